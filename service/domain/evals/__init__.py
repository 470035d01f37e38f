"""Evals, pure: the eval and run bodies in OpenAI's shape (`request`), the graders and their
templates (`graders`), and what a run's grades add up to and how two runs compare (`results`)."""

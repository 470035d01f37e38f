"""Personal data: detecting and redacting it in text, and the policy over a
whole JSON body (`body`), shared by requests, graders and datasets."""

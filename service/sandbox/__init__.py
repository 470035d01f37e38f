"""The sandbox upstream: an OpenAI-compatible server whose jobs progress and whose models answer.

It serves OpenAI's API under `/v1` (files, uploads, fine-tuning jobs with events and
checkpoints, models, chat and legacy completions with streaming, the Responses API with stored
and background responses, embeddings, moderations), with OpenAI's object shapes, ids and error
envelope, all in memory. tunegate uses it when no `OPENAI_API_KEY` is set, its
tests use it at the network edge, and other services run it in CI
(`tunegate sandbox-upstream --port N`).

    handle = start_in_thread(SandboxConfig(api_key="sk-test"))
    client = OpenAI(api_key="sk-test", base_url=handle.base_url)
    ...
    handle.stop()

Every request needs `Authorization: Bearer <api_key>` (401 `invalid_api_key` otherwise).

**Runs.** State is kept per *run*, a separate tenant with its own files, uploads, jobs, tuned
models, stored responses, request log and faults. A request belongs to the run named by its
path prefix `/runs/<run>/...` (so `base_url=http://host:port/runs/<run>/v1` scopes a whole
client, see `SandboxHandle.base_url_for`), else by its `X-Sandbox-Run` header, else to run
`default`.
Run names match `[A-Za-z0-9._-]{1,64}`. Parallel tests each take their own run.

**Jobs** move `validating_files -> queued -> running -> succeeded` over the times set in
`SandboxConfig`; `paused` jobs stand still until resumed; `cancelled` is final; a training file
that is not valid JSONL chat / prompt-completion / preference examples (or has fewer than
`min_examples`) makes the job `failed` with `invalid_training_file`. Loss curves are a pure
function of hyperparameters and seed, with a documented best: see `service.sandbox.training`.
Chat and completion replies are deterministic: see `service.sandbox.inference`; so are
responses (`service.sandbox.responses`), embeddings and moderations
(`service.sandbox.embeddings`).

**Inspection** (same auth, acting on the caller's run; not themselves logged or faulted):

- `GET /_sandbox/requests[?method=POST&path_prefix=/v1/files]` - the request log, oldest
  first: `{"object": "list", "data": [{"id", "at", "method", "path", "query", "headers",
  "body" | "multipart", "status", "fault"}]}`. Paths are shown without the run prefix;
  credentials are never stored (see `service.sandbox.inspection`); a multipart body is shown as
  `{"fields": {...}, "files": [{"field", "filename", "size", "sha256"}]}`.
- `DELETE /_sandbox/requests` - empty the log.
- `GET /_sandbox/counts` - `{"requests": {"POST /v1/files": 1, ...}, "files": {purpose: n},
  "uploads": n, "jobs": {status: n}, "models": n}`.
- `GET /_sandbox/jobs/changes` - `{job id: [{"status", "at"}, ...]}`: each job's status changes,
  `at` in seconds to the microsecond (the events carry whole seconds).
- `POST /_sandbox/reset` - forget the whole run.

**Faults** (`POST /_sandbox/faults`, `GET` to list, `DELETE` to clear). Body:
`{"kind", "method": "*", "path_prefix": "/v1/", "count": 1, "probability": null, "seed": 0,
"retry_after": null, "seconds": 30}`. The next `count` requests of the run whose method and
path match answer with the fault instead of normally; with `probability` set, each matching
request meets it with that (seeded, reproducible) chance, at most `count` times (`count: null`
for no limit). Faults are tried in the order added. Kinds:

- `"429"` - OpenAI's rate-limit error with `Retry-After` (whole seconds) and `retry-after-ms`,
  `retry_after` seconds (default 1);
- `"500"`, `"503"` - server errors (with the retry headers only when `retry_after` is given);
- `"hang"` - no answer for `seconds`, then the normal answer (nothing if the client has gone);
- `"drop"` - the connection is closed without a response.
"""

from service.sandbox.app import create_app
from service.sandbox.config import SandboxConfig
from service.sandbox.server import SandboxHandle, serve, start_in_thread

__all__ = ["SandboxConfig", "SandboxHandle", "create_app", "serve", "start_in_thread"]

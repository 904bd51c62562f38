"""Stand-in teachers for two held-out tasks the training defaults were never tuned on.

`tasks` holds the tasks (pure: inputs and the teacher's answers); `server` serves them as an
OpenAI-compatible teacher so their exchanges are logged through the gateway like real ones.
"""

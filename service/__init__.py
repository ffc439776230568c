"""The HTTP service and web gallery over a model folder (FastAPI + uvicorn)."""

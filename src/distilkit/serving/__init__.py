"""`distilkit serve`: a FastAPI app on uvicorn that answers predictions of one model, micro-batched."""

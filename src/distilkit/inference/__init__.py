"""Running trained models: loading a run, model or ONNX folder with its label map (loading.py), ONNX Runtime
sessions (onnx_model.py) and predictions with entity spans (predict.py; options in options.py). Kept free of
heavy imports so that `distilkit --help` does not load torch."""

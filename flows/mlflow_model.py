"""MLflow pyfunc wrapper of an mlzoo bundle, logged as "models from code" (no pickle).

``mlflow.pyfunc.load_model("models:/image_classification@champion")`` rebuilds the
network from the bundle's safetensors weights and config through the task registry.
``predict`` takes a batch of model-ready arrays (for images: uint8 N x H x W x C)
and returns one JSON-ready answer per row.
"""

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel


class MLZooModel(PythonModel):
    def load_context(self, context):
        from tasks_lib.core.bundle import load_bundle

        self.loaded = load_bundle(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input, params=None):
        import numpy as np

        task, loaded = self.loaded.task, self.loaded
        return [task.postprocess(loaded, row) for row in task.forward(loaded, np.asarray(model_input))]


mlflow.models.set_model(MLZooModel())

"""Transfer learning (seed example 6): the image_classification champion's backbone, adapted to
inverted-ink digits with 10 labels per class (linear probe or full fine-tune), against the same
network trained from scratch on the same labels and budget.
"""

from tasks_lib.tasks.transfer_learning.task import TransferLearning

__all__ = ["TransferLearning"]

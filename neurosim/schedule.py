"""The training schedule: the ``training:`` section of a protocol, declared here, and what follows
from it that is not a constant default (the evaluation batch that fits in the memory budget).

The training loop (:mod:`neurosim.train`) runs the schedule an
:class:`~neurosim.experiment.Experiment` holds as its validated ``training`` options.
"""

from __future__ import annotations

from .core.options import Field, Section

TRAINING = Section({
    "epochs": Field(int, default=190, min=1, units="epoch", doc="passes over the training set"),
    "batch_size": Field(int, default=128, min=1, units="example"),
    "eval_every": Field(int, default=10, min=1, units="epoch",
                        doc="epochs between evaluations and checkpoints"),
    "early_stop": Field(bool, default=True, doc="stop at zero training error (at an evaluation)"),
    "max_steps": Field(int, default=None, nullable=True, min=1, units="step",
                       doc="stop after this many optimizer steps"),
    "eval_batch_size": Field(int, default=None, nullable=True, min=1, units="example",
                             doc="examples per forward pass during evaluation (default: as "
                                 "many as fit in the memory budget, at most 2000)"),
    "memory_gib": Field(float, default=None, nullable=True, min=0, exclusive_min=True,
                        units="GiB", doc="memory the run may use (default: half of the "
                                         "memory available when it starts)"),
    "eval_train_subset": Field(int, default=None, nullable=True, min=1, units="example",
                               doc="training examples the train error is measured on "
                                   "(default: all; in a short run, max_steps of less than "
                                   "one epoch, the first 10,000, as the run's first lines "
                                   "say)"),
    "shuffle": Field(bool, default=True, doc="shuffle the training set every epoch"),
    "input_noise": Field(float, default=0.0, min=0,
                         doc="standard deviation of Gaussian noise added to every training "
                             "batch's inputs (a denoising autoencoder); targets and "
                             "evaluation stay clean"),
}, doc="the training schedule")


def memory_needs(training, realization, optimizer, K: int) -> dict:
    """What the memory estimate (:mod:`neurosim.model.memory`) needs beside the layers: the copies
    of every parameter the realization keeps (``realization.parameter_copies``), the arrays of
    state per parameter the optimizer keeps (``optimizer.STATE_ARRAYS``) and the training batch.
    ``realization`` and ``optimizer`` are classes (or instances) of the protocol's choices."""
    return {"copies": realization.parameter_copies(K), "optimizer_state": optimizer.STATE_ARRAYS,
            "batch_size": training.batch_size}


def eval_batch_size(training, layers, K: int, in_shape, itemsize: int, budget: int | None,
                    needs: dict) -> int:
    """Examples per evaluation pass: ``training.eval_batch_size``, else as many as fit in
    ``budget`` bytes (:func:`neurosim.model.memory.eval_batch_size`) beside the parameters and a
    training batch (``needs``: :func:`memory_needs`)."""
    from .model import memory

    if training.eval_batch_size:
        return training.eval_batch_size
    return memory.eval_batch_size(layers, K, in_shape, itemsize, budget, **needs)

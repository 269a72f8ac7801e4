"""The models a run finetunes: pretrained encoders with a fresh classification head
(:mod:`~mixsweep.models.pretrained`)."""

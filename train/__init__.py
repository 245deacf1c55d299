"""latentforge.train: PyTorch models, losses, schedules, training and reference samplers."""

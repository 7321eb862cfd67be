"""Distillation: loss functions and temperature schedules."""

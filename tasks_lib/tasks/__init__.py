"""Task modules, one module or package per task, named as the task.

A task is registered when its module is imported; ``registry.get_task(name)`` imports
only the module of that name, so nothing else needs to list it.
"""

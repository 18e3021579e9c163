"""Task families: the base class (and its model, readers, helpers) that a group of tasks share.

A concrete task in ``tasks_lib/tasks/`` subclasses a family base and adds its name, profiles,
registration and what is its own (its generated data, its baseline). Families import only
``tasks_lib.core``; no task package imports another task's package. Importing this package
imports no family (each is imported by the tasks that use it).
"""

"""BentoML serving: one generic service answering through a task's predict adapter."""

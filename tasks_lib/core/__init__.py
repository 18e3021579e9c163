"""Task-agnostic building blocks shared by every task module."""

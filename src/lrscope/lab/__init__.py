"""The course lesson, exactly: gradient descent on noisy linear data (NumPy only)."""

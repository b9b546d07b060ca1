"""What a converted network does: the ANN oracle, evaluation, boundary cases, Loihi 2 estimates, reports."""

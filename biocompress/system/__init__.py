"""Operating-system concerns: safe outputs and temporaries, OS errors, worker processes."""

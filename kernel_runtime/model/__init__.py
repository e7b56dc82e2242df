"""What a product and a run are: the notebook's rules, parameter types, run records. Pure, no I/O."""

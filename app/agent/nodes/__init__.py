"""The workflow's steps, one module each: (state, runtime) -> update or Command."""

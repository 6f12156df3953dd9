"""Operations: validate arguments, pick a backend, dispatch."""

"""Operations: watching the running platform (consumer lag, ...)."""

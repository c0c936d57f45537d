"""Search indexes over stored media documents (rows, generations, backends)."""

"""Schemas: the DSL, its compiler, compiled validators, compatibility and the registry."""

"""Frontends turn model files into the IR."""

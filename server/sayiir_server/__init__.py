"""sayiir-persistence-grpc server: storage traits, backends, servicers and the process."""

__version__ = "0.1.0"
"""This release; the distribution's version (setuptools reads it), the same as sayiir_client.__version__."""

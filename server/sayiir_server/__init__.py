"""sayiir-persistence-grpc server: storage traits, backends, servicers and the process."""

__version__ = "0.1.0"

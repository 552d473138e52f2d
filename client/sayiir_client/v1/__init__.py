"""Generated from proto/sayiir/persistence/v1 by `make proto`; do not edit."""

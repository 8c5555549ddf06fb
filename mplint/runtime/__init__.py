"""Runtime verifier. Importing this package must not import torch: only its functions do."""

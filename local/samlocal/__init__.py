"""The engine `sam local` needs on our Debian machines (Docker, qemu for arm64, a Lambda base image)."""

"""Local Kubernetes API emulator, process kubelet and simulated node pools."""

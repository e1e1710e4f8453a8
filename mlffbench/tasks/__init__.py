"""What is done with a trained model: the conformance checks, molecular dynamics, energy scans."""

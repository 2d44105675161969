"""One module per provisioner command: add_arguments(parser) and run(args) -> exit code."""

"""mailstack command-line tools that work without the Pulumi CLI: `verify`, `render`, `adopt`."""

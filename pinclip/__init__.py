"""PinCLIP Stream glue: settings, logging, CLI, local services, query API and the demo.

`pinclip` wires the other packages together and is the only package that reads settings from
the environment. It may import `encoder`, `graph_store`, `vector_store`, `trainer` and `streams`;
none of those import `pinclip`.
"""

__version__ = "0.1.0"

"""JupyterLab integration: the jupyter_server extension (:mod:`.server_extension`) behind ``extension/``."""

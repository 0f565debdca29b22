"""eventface: domain, services, ports and adapters of the face-recognition platform."""

"""Use cases (verbs) over the ports; no boto3, pynamodb, cv2 or chalice here."""

"""Realtime plane: the room WebSocket, its protocol, fan-out, presence and the broker between nodes."""

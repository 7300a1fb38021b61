"""Companies (minimal: the foundation slice). Extended by the control-plane work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["companies"])

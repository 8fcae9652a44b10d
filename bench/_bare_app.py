"""The baseline for bench/api_load.py: a bare Flask endpoint, served the same way."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/bare")
def bare():
    return jsonify({"ok": True})

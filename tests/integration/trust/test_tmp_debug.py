import json
from dharma.bench import trust_throughput as tt

def test_dbg(settings, tmp_path, monkeypatch):
    orig = tt.subprocess.Popen
    def popen(args, **kw):
        if "dharma.bench.faust_baseline" in args:
            args = [*args, "--log-level", "info"]
        return orig(args, **kw)
    monkeypatch.setattr(tt.subprocess, "Popen", popen)
    r = tt.measure_trust_throughput(settings, 20000, timeout_s=40, log_path="/tmp/dbg_bench.log")
    print(json.dumps(r))

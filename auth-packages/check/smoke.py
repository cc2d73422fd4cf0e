#!/usr/bin/env python3
"""Smoke check of the prebuilt dist/*.wasm without building the extism crate (whose wasmtime
build is slow): runs each package under the `wasmtime` Python package with Extism's own kernel
(`extism-runtime.wasm`, from the extism 1.30.0 crate source in the cargo registry), and
answers the four host functions the packages import (config_get, http_request,
http_status_code, http_headers) the way extism 1.30's pdk.rs does (a refused host is a trap),
against the real StubIdp (the devstack example `stub-idp`, started here).

A developer tool, not part of CI: the node-side integration tests run the packages with the
real extism runtime. Needs `pip install wasmtime` and the extism 1.30.0 crate source in the
cargo registry (`cargo fetch` once the main workspace depends on it). Run from anywhere:
    python3 auth-packages/check/smoke.py
"""
import glob, json, os, subprocess, sys, threading, time, urllib.request, urllib.error, urllib.parse
import wasmtime as w

HERE = os.path.dirname(os.path.abspath(__file__))
DIST = os.path.join(HERE, '..', 'dist')
ROOT = os.path.join(HERE, '..', '..', '..')
CARGO_HOME = os.environ.get('CARGO_HOME', os.path.expanduser('~/.cargo'))
kernels = glob.glob(os.path.join(CARGO_HOME, 'registry/src/*/extism-1.30.0/src/extism-runtime.wasm'))
if not kernels:
    sys.exit('extism 1.30.0 source not found in the cargo registry (see the docstring)')
KERNEL = kernels[0]
# The stub IdP prints its base URL, then serves until its stdin closes.
idp = subprocess.Popen(['cargo', 'run', '-q', '-p', 'tessera-devstack', '--example', 'stub-idp'],
                       cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
BASE = idp.stdout.readline().strip()
assert BASE.startswith('http://'), 'stub-idp did not start'
cfg = w.Config(); cfg.epoch_interruption = True
engine = w.Engine(cfg)
kernel_mod = w.Module.from_file(engine, KERNEL)

class Plugin:
    def __init__(self, path, config, allowed_hosts):
        self.store = w.Store(engine)
        self.store.set_limits(memory_size=256 * 65536)
        self.store.set_epoch_deadline(1 << 40)
        self.config, self.allowed = config, allowed_hosts
        self.kernel = w.Instance(self.store, kernel_mod, [])
        kx = self.kernel.exports(self.store)
        self.kx = kx
        self.mem = kx['memory']
        mod = w.Module.from_file(engine, path)
        linker = w.Linker(engine)
        self.status = 0
        host = {'config_get': self.config_get, 'http_request': self.http_request,
                'http_status_code': lambda: self.status, 'http_headers': lambda: 0}
        imports = []
        for imp in mod.imports:
            assert imp.module == 'extism:host/env', imp.module
            if imp.name in host:
                linker.define_func(imp.module, imp.name, imp.type, host[imp.name])
            else:
                linker.define(self.store, imp.module, imp.name, kx[imp.name])
        self.inst = linker.instantiate(self.store, mod)
        self.px = self.inst.exports(self.store)

    def read(self, off):
        n = self.kx['length'](self.store, off)
        return bytes(self.mem.read(self.store, off, off + n)) if n else b''

    def write(self, data):
        off = self.kx['alloc'](self.store, len(data))
        self.mem.write(self.store, data, off)
        return off

    def config_get(self, off):
        v = self.config.get(self.read(off).decode())
        return 0 if v is None else self.write(v.encode())

    def http_request(self, req_off, body_off):
        req = json.loads(self.read(req_off))
        body = self.read(body_off) if body_off else None
        host = urllib.parse.urlparse(req['url']).hostname
        if host not in self.allowed:
            raise Exception(f"HTTP request to {req['url']} is not allowed")
        r = urllib.request.Request(req['url'], data=body, method=req.get('method') or 'GET',
                                   headers=req.get('headers', {}))
        try:
            with urllib.request.urlopen(r) as resp:
                self.status, data = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            self.status, data = e.code, e.read()
        return self.write(data) if data else 0

    def call(self, fn, data=b''):
        self.store.set_epoch_deadline(2)  # ~2 ticks of the 1 s ticker below
        self.kx['reset'](self.store)
        off = self.write(data) if data else 0
        self.kx['input_set'](self.store, off, len(data))
        self.store.set_epoch_deadline(2)  # ~2 ticks of the 1 s ticker below
        try:
            rc = self.px[fn](self.store)
        except Exception as e:
            return ('trap', str(e).splitlines()[0][:100] + ' | ' + str(e).splitlines()[-1][:100])
        if rc != 0:
            return ('rc', rc, self.read(self.kx['error_get'](self.store)))
        out = self.read(self.kx['output_offset'](self.store))
        return json.loads(out) if fn == 'authenticate' else out.decode()

def ticker():
    while True:
        time.sleep(1); engine.increment_epoch()
threading.Thread(target=ticker, daemon=True).start()

def inp(params, settings=None, base=BASE, client_id='tessera'):
    return json.dumps({'interface': 1, 'app': {'app_id': 'acme', 'base_url': base,
        'client_id': client_id, 'settings': settings or {}}, 'params': params}).encode()

results = []
def check(label, got, pred):
    ok = pred(got); results.append(ok)
    print(('PASS' if ok else 'FAIL'), label, '->', got)

good = {'client_secret': 's3cret'}
hp = Plugin(f'{DIST}/http-password.wasm', good, ['127.0.0.1'])
check('http-password interface_version', hp.call('interface_version'), lambda g: g == '1')
check('http-password ok', hp.call('authenticate', inp({'username': 'ann', 'password': 'pw'})),
      lambda g: g == {'ok': True, 'subject': 'user-42', 'name': 'Ann Example'})
check('http-password same instance again', hp.call('authenticate', inp({'username': 'ann', 'password': 'pw'})),
      lambda g: g.get('ok') is True)
check('http-password wrong password', hp.call('authenticate', inp({'username': 'ann', 'password': 'x'})),
      lambda g: g == {'ok': False, 'reason': 'invalid credentials'})
check('http-password missing param', hp.call('authenticate', inp({'username': 'ann'})),
      lambda g: g == {'ok': False, 'reason': 'missing parameter password'})
check('http-password bad input', hp.call('authenticate', b'not json'), lambda g: 'error' in g)
check('http-password wrong path setting -> 404 error', hp.call('authenticate',
      inp({'username': 'ann', 'password': 'pw'}, {'userinfo_path': '/nope'})),
      lambda g: g == {'error': 'upstream answered 404'})
bad = Plugin(f'{DIST}/http-password.wasm', {'client_secret': 'wrong'}, ['127.0.0.1'])
check('http-password wrong client secret', bad.call('authenticate', inp({'username': 'ann', 'password': 'pw'})),
      lambda g: g == {'error': 'upstream answered 400'})
nosecret = Plugin(f'{DIST}/http-password.wasm', {}, ['127.0.0.1'])
check('http-password no client_secret', nosecret.call('authenticate', inp({'username': 'ann', 'password': 'pw'})),
      lambda g: 'error' in g)
deny = Plugin(f'{DIST}/http-password.wasm', good, ['idp.example'])
check('http-password host not allowed -> trap', deny.call('authenticate', inp({'username': 'ann', 'password': 'pw'})),
      lambda g: g[0] == 'trap' and 'not allowed' in g[1])

oc = Plugin(f'{DIST}/oauth2-code.wasm', good, ['127.0.0.1'])
cb = 'http://app.example/cb'
check('oauth2-code interface_version', oc.call('interface_version'), lambda g: g == '1')
check('oauth2-code ok', oc.call('authenticate', inp({'code': 'code-1', 'redirect_uri': cb})),
      lambda g: g == {'ok': True, 'subject': 'user-42', 'name': 'Ann Example'})
check('oauth2-code reused code', oc.call('authenticate', inp({'code': 'code-1', 'redirect_uri': cb})),
      lambda g: g == {'ok': False, 'reason': 'invalid_grant'})
check('oauth2-code wrong redirect', oc.call('authenticate', inp({'code': 'code-2', 'redirect_uri': 'http://x/cb'})),
      lambda g: g == {'ok': False, 'reason': 'invalid_grant'})
ocbad = Plugin(f'{DIST}/oauth2-code.wasm', {'client_secret': 'wrong'}, ['127.0.0.1'])
check('oauth2-code wrong client', ocbad.call('authenticate', inp({'code': 'code-3', 'redirect_uri': cb})),
      lambda g: g == {'error': 'token endpoint answered 401'})

for f, v in (('misbehave.wasm', '1'), ('misbehave-2.wasm', '2')):
    mb = Plugin(f'{DIST}/{f}', {}, ['127.0.0.1'])
    check(f'{f} version', mb.call('authenticate', inp({'mode': 'version'})),
          lambda g, v=v: g == {'ok': True, 'subject': v})
mb = Plugin(f'{DIST}/misbehave.wasm', {}, ['127.0.0.1'])
check('misbehave ok', mb.call('authenticate', inp({'mode': 'ok', 'subject': 's-1'})),
      lambda g: g == {'ok': True, 'subject': 's-1'})
check('misbehave host (refused) -> trap', mb.call('authenticate', inp({'mode': 'host', 'url': 'http://evil.example/x'})),
      lambda g: g[0] == 'trap' and 'not allowed' in g[1])
check('misbehave host (allowed)', mb.call('authenticate', inp({'mode': 'host', 'url': BASE + '/nope'})),
      lambda g: 'error' in g and 'was allowed' in g['error'])
t = time.time()
check('misbehave loop -> interrupted', mb.call('authenticate', inp({'mode': 'loop'})), lambda g: g[0] == 'trap')
print(f'   loop interrupted after {time.time() - t:.1f}s')
mb2 = Plugin(f'{DIST}/misbehave.wasm', {}, ['127.0.0.1'])
check('misbehave alloc -> trap', mb2.call('authenticate', inp({'mode': 'alloc'})), lambda g: g[0] == 'trap')
check('misbehave unknown mode', mb.call('authenticate', inp({'mode': 'dance'})), lambda g: 'error' in g)
idp.stdin.close()
print('stub idp hits:', ' '.join(idp.stdout.read().split()))
idp.wait(timeout=10)
print(f'{sum(results)} passed, {len(results) - sum(results)} failed')
sys.exit(0 if all(results) else 1)

#!/usr/bin/python3
"""chatserver's TLS, rated by testssl.sh (Debian's testssl.sh): no finding worse than LOW.

The server runs as it would on a LAN with a certificate from the site's own authority: a test CA
made here with the openssl command signs a certificate for 127.0.0.1 that names where its
revocation would be published, and testssl is told to trust that CA (--add-ca). testssl then
checks the protocols, the cipher lists, the server's preferences and defaults, the HTTP headers
of the page, the known vulnerabilities (Heartbleed, CCS, ROBOT, renegotiation, CRIME, BREACH,
POODLE, SWEET32, BEAST, LUCKY13, ...) and what common clients would negotiate.

    /usr/bin/python3 tests/web/testssl_test.py --server build/release/server/chatserver

About a minute and a half, most of it testssl's own start-up and its one openssl per probe.
Exits 0 if no finding is rated worse than LOW, else 1, with the findings.
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatweb  # noqa: E402

# testssl's ratings of a weakness are LOW, MEDIUM, HIGH and CRITICAL; OK and INFO are not
# weaknesses, and WARN is a check that could not be made (testssl's own openssl lacks an engine;
# its session resumption check now and then fails to connect its first s_client): printed, not
# rated.
ALLOWED = {'OK', 'INFO', 'LOW', 'WARN', 'DEBUG'}


def openssl(*args):
    subprocess.run(['openssl', *args], check=True, capture_output=True)


def make_ca_and_certificate(d):
    ca_key, ca_cert = os.path.join(d, 'ca.key'), os.path.join(d, 'ca.pem')
    key, csr, cert = os.path.join(d, 'server.key'), os.path.join(d, 'server.csr'), os.path.join(d, 'server.pem')
    ext = os.path.join(d, 'server.ext')
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj',
            '/O=chat test/CN=chat test CA', '-days', '90', '-keyout', ca_key, '-out', ca_cert,
            '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj',
            '/O=chat test/CN=127.0.0.1', '-keyout', key, '-out', csr)
    with open(ext, 'w') as f:
        f.write('basicConstraints=critical,CA:FALSE\n'
                'keyUsage=critical,digitalSignature\n'
                'extendedKeyUsage=serverAuth\n'
                'subjectAltName=IP:127.0.0.1\n'
                'crlDistributionPoints=URI:http://127.0.0.1/chat-test-ca.crl\n'
                'authorityInfoAccess=OCSP;URI:http://127.0.0.1/ocsp\n')
    openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial', '-days', '90',
            '-sha256', '-extfile', ext, '-out', cert)
    return ca_cert, cert, key


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--server', required=True)
    args = parser.parse_args()
    testssl = shutil.which('testssl') or shutil.which('testssl.sh')
    if not testssl:
        print('testssl.sh is not installed: apt-get install testssl.sh')
        return 1
    with tempfile.TemporaryDirectory(prefix='chat-testssl-') as d:
        ca, cert, key = make_ca_and_certificate(d)
        server = chatweb.ChatServer(os.path.abspath(args.server), extra=['--tls-cert', cert, '--tls-key', key])
        report = os.path.join(d, 'testssl.json')
        try:
            run = subprocess.run([testssl, '--quiet', '--color', '0', '--warnings', 'off', '--nodns', 'none',
                                  '--add-ca', ca, '--jsonfile', report, '127.0.0.1:%d' % server.port],
                                 capture_output=True, text=True, timeout=480)
        finally:
            server.stop()
        if not os.path.exists(report):
            print('testssl wrote no report (exit %d):\n%s\n%s' % (run.returncode, run.stdout[-3000:], run.stderr[-3000:]))
            return 1
        with open(report) as f:
            findings = json.load(f)
    counts = collections.Counter(x['severity'] for x in findings)
    bad = [x for x in findings if x['severity'] not in ALLOWED]
    print('testssl: %d findings: %s' % (len(findings), ', '.join('%s %d' % kv for kv in sorted(counts.items()))))
    for x in findings:
        if x['severity'] not in ('OK', 'INFO'):
            print('  %-8s %-24s %s' % (x['severity'], x['id'], x['finding'][:160]))
    protocols = {x['id']: x['finding'] for x in findings if x['id'] in ('SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3')}
    print('  protocols: ' + '; '.join('%s: %s' % kv for kv in sorted(protocols.items())))
    if len(findings) < 50:
        print('FAIL: too few findings: testssl did not get far (%d)' % len(findings))
        return 1
    if bad:
        print('FAIL: %d finding(s) worse than LOW' % len(bad))
        return 1
    print('PASS: nothing worse than LOW')
    return 0


if __name__ == '__main__':
    sys.exit(main())

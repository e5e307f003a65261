/** clusterconfig: every error names the file and the line. */
import { expect } from 'chai';
import { formatClusterConfig, loopbackServers, parseClusterConfig, loadClusterConfig } from '../src/config/clusterConfig.js';
import { ChorusError } from '../src/errors.js';

const five = ['127.0.0.1 7101 7201', '127.0.0.1 7102 7202', '127.0.0.1 7103 7203', '127.0.0.1 7104 7204', '127.0.0.1 7105 7205'];

function errorOf(text: string): string {
  try {
    parseClusterConfig(text, 'clusterconfig');
  } catch (err) {
    expect(err).to.be.instanceOf(ChorusError);
    expect((err as ChorusError).code).to.equal('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('clusterconfig', () => {
  it('numbers servers by their line among server lines, skipping comments and blank lines', () => {
    const config = parseClusterConfig(['# the cluster', '', ...five.slice(0, 2), '   # comment', five[2] + '  # trailing'].join('\n'), 'c');
    expect(config.servers.map((s) => [s.id, s.udpPort, s.clientPort])).to.deep.equal([
      [1, 7101, 7201],
      [2, 7102, 7202],
      [3, 7103, 7203],
    ]);
  });

  it('the shipped clusterconfig has five servers on 127.0.0.1', () => {
    const config = loadClusterConfig('clusterconfig');
    expect(config.servers).to.have.length(5);
    expect(config.servers.every((s) => s.host === '127.0.0.1')).to.equal(true);
  });

  it('a generated configuration of n servers (tools/cluster start --servers) reads back as n servers on 127.0.0.1, ports 7101.. and 7201..', () => {
    for (const n of [3, 9]) {
      const config = parseClusterConfig(formatClusterConfig(loopbackServers(n), `written for ${n}`), 'c');
      expect(config.servers.map((s) => `${s.id} ${s.host} ${s.udpPort} ${s.clientPort}`)).to.deep.equal(Array.from({ length: n }, (_, i) => `${i + 1} 127.0.0.1 ${7101 + i} ${7201 + i}`));
    }
    expect(formatClusterConfig(loopbackServers(5), 'x').split('\n').filter((l) => l.startsWith('127')).join('\n')).to.equal(five.join('\n'));
  });

  it('rejects a line without three fields', () => {
    expect(errorOf([...five.slice(0, 3), '127.0.0.1 7104'].join('\n'))).to.equal(
      'clusterconfig:4: expected "<host> <udp-port> <client-port>", got "127.0.0.1 7104"',
    );
  });

  it('rejects a port that is not a number or out of range', () => {
    expect(errorOf(['127.0.0.1 71o1 7201', ...five.slice(1)].join('\n'))).to.equal('clusterconfig:1: UDP port "71o1" is not a number');
    expect(errorOf([...five.slice(0, 2), '127.0.0.1 7103 70000'].join('\n'))).to.equal('clusterconfig:3: client port 70000 is out of range 1-65535');
  });

  it('rejects a bad host', () => {
    expect(errorOf([...five.slice(0, 2), 'bad_host! 7103 7203'].join('\n'))).to.equal('clusterconfig:3: invalid host "bad_host!"');
  });

  it('rejects a duplicate address or port', () => {
    expect(errorOf([...five.slice(0, 3), '', '127.0.0.1 7102 7299'].join('\n'))).to.equal(
      'clusterconfig:5: duplicate address 127.0.0.1:7102 (already used by server 2)',
    );
    expect(errorOf([...five.slice(0, 2), '127.0.0.1 7103 7101'].join('\n'))).to.equal(
      'clusterconfig:3: duplicate address 127.0.0.1:7101 (already used by server 1)',
    );
    expect(errorOf([...five.slice(0, 2), '127.0.0.1 7103 7103'].join('\n'))).to.equal('clusterconfig:3: UDP port and client port are both 7103');
  });

  it('rejects fewer than 3 or more than 9 servers', () => {
    expect(errorOf(['# two', ...five.slice(0, 2)].join('\n'))).to.equal('clusterconfig:3: too few servers: 2 listed, at least 3 needed');
    const ten = Array.from({ length: 10 }, (_, i) => `127.0.0.1 ${8000 + i} ${9000 + i}`);
    expect(errorOf(ten.join('\n'))).to.equal('clusterconfig:10: too many servers: at most 9 are supported');
  });

  it('reports an unreadable file by name', () => {
    expect(() => loadClusterConfig('/nonexistent/clusterconfig')).to.throw(ChorusError, /^\/nonexistent\/clusterconfig: cannot read cluster configuration/);
  });
});

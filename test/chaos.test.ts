/**
 * tools/chaos against a test cluster of five daemon processes: random
 * partitions, loss, kills and relaunches while clients on every server
 * chat; afterwards nothing confirmed is lost or duplicated and all agree.
 */
import { expect } from 'chai';
import { ProcessCluster } from './support/processCluster.js';

describe('chaos against real processes', function () {
  this.timeout(120_000);
  let cluster: ProcessCluster | undefined;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = undefined;
  });

  it('a 20 s random fault schedule with clients on every server ends converged, with every confirmed operation applied once', async () => {
    cluster = await ProcessCluster.create(5);
    await cluster.tool('cluster', 'start', '--no-console');
    const report = JSON.parse(await cluster.tool('chaos', '--duration', '20', '--seed', '7', '--fault-interval-ms', '1200', '--json')) as {
      faults: Record<string, number>;
      operations: { confirmed: number };
      appendsConfirmed: number;
      violations: string[];
    };
    expect(report.violations).to.deep.equal([]);
    expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).to.be.greaterThan(5);
    expect(report.appendsConfirmed).to.be.greaterThan(100);
  });
});

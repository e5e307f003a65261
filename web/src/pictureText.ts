/** How the picture is put in words and colours on the page. */
import type { ClusterPicture } from '../../src/console/api.js';

/** Fill colours for digest groups: servers with the same digest share one. */
const palette = ['#bfe3c6', '#c6d8f5', '#f5deb3', '#e3c6f0', '#c6f0ec', '#f0c6d6', '#dcdcdc', '#f5f5b3', '#d6e6c6'];

export function digestColor(picture: ClusterPicture, id: number): string {
  const index = picture.digestGroups.findIndex((g) => g.includes(id));
  return palette[Math.max(0, index) % palette.length];
}

/** "{1,2} | {3,4,5}" when servers are cut apart, with one-way cuts named. */
export function partitionText(picture: ClusterPicture): string {
  const sides = picture.sides.map((s) => `{${s.join(',')}}`).join(' | ');
  const oneWay = picture.oneWayCuts.map((c) => `${c.from} -> ${c.to} cut`).join(', ');
  const parts = [picture.sides.length > 1 ? `partition ${sides}` : picture.sides.length === 1 ? 'no partition' : '', oneWay ? `one-way: ${oneWay}` : ''];
  return parts.filter((p) => p !== '').join('; ');
}

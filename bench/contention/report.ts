// The bench's outputs: a readable table, the JSON rows (exactly the documented fields) and an SVG
// chart of throughput and p99 latency per strategy, hot SKU beside 1,000 SKUs.

export interface BenchRow {
  strategy: string;
  hotSku: boolean;
  concurrency: number;
  durationSec: number;
  throughputPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  oversold: number;
  /** Stale writes a fencing token refused in the oversell phase (0 for unfenced strategies). */
  refusedWrites: number;
}

export function table(rows: readonly BenchRow[]): string {
  const header = ['strategy', 'SKUs', 'throughput/s', 'p50 ms', 'p99 ms', 'max ms', 'oversold', 'refused writes'];
  const body = rows.map((row) => [
    row.strategy,
    row.hotSku ? '1 hot' : '1,000',
    row.throughputPerSec.toFixed(0),
    row.p50Ms.toFixed(2),
    row.p99Ms.toFixed(2),
    row.maxMs.toFixed(1),
    String(row.oversold),
    String(row.refusedWrites),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((cells) => (cells[column] as string).length)));
  const line = (cells: string[]) => `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((width, column) => (column === 0 ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`, ...body.map(line)].join('\n');
}

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function barChart(rows: readonly BenchRow[], value: (row: BenchRow) => number, title: string, unit: string, top: number): string {
  const strategies = [...new Set(rows.map((row) => row.strategy))];
  const maximum = Math.max(1, ...rows.map(value));
  const left = 190;
  const width = 560;
  const rowHeight = 34;
  const parts = [`<text x="10" y="${top + 18}" font-size="15" font-weight="bold">${escapeXml(title)}</text>`];
  strategies.forEach((strategy, index) => {
    const y = top + 30 + index * rowHeight;
    parts.push(`<text x="${left - 8}" y="${y + 19}" font-size="12" text-anchor="end">${escapeXml(strategy)}</text>`);
    for (const [offset, hot] of [[0, true], [14, false]] as const) {
      const row = rows.find((candidate) => candidate.strategy === strategy && candidate.hotSku === hot);
      if (row === undefined) continue;
      const length = Math.max(1, (value(row) / maximum) * width);
      parts.push(`<rect x="${left}" y="${y + offset}" width="${length.toFixed(1)}" height="12" fill="${hot ? '#d9534f' : '#337ab7'}"/>`);
      parts.push(`<text x="${left + length + 4}" y="${y + offset + 10}" font-size="10">${value(row).toFixed(value(row) < 10 ? 2 : 0)} ${unit}${row.oversold > 0 ? ` (oversold ${row.oversold})` : ''}${row.refusedWrites > 0 ? ` (refused ${row.refusedWrites})` : ''}</text>`);
    }
  });
  return parts.join('\n');
}

export function svgChart(rows: readonly BenchRow[], caption: string): string {
  const strategies = new Set(rows.map((row) => row.strategy)).size;
  const section = 40 + strategies * 34;
  const height = 2 * section + 60;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    barChart(rows, (row) => row.throughputPerSec, 'Throughput (attempts/s, higher is better)', '/s', 0),
    barChart(rows, (row) => row.p99Ms, 'p99 latency (ms, lower is better)', 'ms', section),
    `<rect x="190" y="${2 * section + 10}" width="12" height="12" fill="#d9534f"/><text x="206" y="${2 * section + 20}" font-size="12">one hot SKU</text>`,
    `<rect x="310" y="${2 * section + 10}" width="12" height="12" fill="#337ab7"/><text x="326" y="${2 * section + 20}" font-size="12">1,000 SKUs</text>`,
    `<text x="10" y="${2 * section + 45}" font-size="11" fill="#555">${escapeXml(caption)}</text>`,
    '</svg>',
  ].join('\n');
}

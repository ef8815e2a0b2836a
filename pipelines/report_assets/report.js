// The HTML report's charts (pipelines/report_html.py): its data come as JSON, never as markup.
const data = JSON.parse(document.getElementById('report-data').textContent);
const palette = ['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f',
  '#bcbd22','#17becf','#393b79','#ad494a','#637939','#8c6d31','#843c39','#7b4173'];
function chart(id, config) {
  const canvas = document.getElementById(id);
  config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, config.options);
  new Chart(canvas, config);
}
chart('burnup', {type: 'line', data: {datasets: Object.entries(data.burnup).map(([label, points], i) => ({
  label, data: points.map(p => ({x: Date.parse(p.x), y: p.y})), stepped: true, pointRadius: 0,
  borderColor: palette[i % palette.length]}))},
  options: {parsing: false, scales: {x: {type: 'linear', ticks: {callback: v => { const d = new Date(v); return d.toUTCString().slice(5, 11) + ' ' + d.toISOString().slice(11, 16); }}},
    y: {title: {display: true, text: 'runs done'}}}, plugins: {title: {display: true, text: 'Burn-up of running backfills (UTC)'}}}});
chart('times', {type: 'bar', data: {labels: data.times.labels.map((l, i) => `${l} (n=${data.times.n[i]})`),
  datasets: [{label: 'median queue (min)', data: data.times.queue, backgroundColor: palette[1]},
             {label: 'median run (min)', data: data.times.run, backgroundColor: palette[0]}]},
  options: {indexAxis: 'y', plugins: {title: {display: true, text: 'Queue and run times of completed backfills per transfer'}}}});
chart('rates', {type: 'bar', data: {labels: data.rates.map(r => `${r.label} (${r.failed}/${r.n})`),
  datasets: [{label: '% of runs failed', data: data.rates.map(r => 100 * r.failed / r.n), backgroundColor: palette[3]}]},
  options: {indexAxis: 'y', plugins: {title: {display: true, text: 'Failure rates per transfer (failed/n)'}}}});
chart('errors', {type: 'bar', data: {labels: data.errors.days,
  datasets: Object.entries(data.errors.patterns).map(([label, counts], i) => ({label, data: counts, backgroundColor: palette[i % palette.length]}))},
  options: {scales: {x: {stacked: true}, y: {stacked: true, title: {display: true, text: 'new errors'}}},
    plugins: {title: {display: true, text: 'Error patterns over time (day first seen, UTC)'}}}});
chart('freshness', {type: 'bar', data: {labels: data.freshness.map(f => f.team),
  datasets: [{label: 'minutes since the newest successful poll', data: data.freshness.map(f => f.minutes), backgroundColor: palette[2]}]},
  options: {indexAxis: 'y', plugins: {title: {display: true, text: "Each team's freshness"}}}});
document.body.dataset.charts = String(Object.keys(Chart.instances).length);  // for the test: all drawn

using System.ComponentModel;
using System.Globalization;
using System.Text;
using Diffuse.Benchmarking;
using Diffuse.Data;
using Diffuse.Evaluation;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Imaging;
using Diffuse.IO;
using Diffuse.Sampling;
using SkiaSharp;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse bench-samplers</c>.</summary>
public sealed class BenchSamplersSettings : CommonSettings
{
    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train'; the results are written into it.")]
    public string? Model { get; init; }

    /// <summary>Budgets.</summary>
    [CommandOption("--budgets <LIST>")]
    [Description("Comma-separated budgets of network evaluations (NFE) per sample (default 5,10,20,50,100). Each sampler gets the most steps whose cost fits: Heun makes two evaluations per step.")]
    public string? Budgets { get; init; }

    /// <summary>Data.</summary>
    [CommandOption("--data <DATA>")]
    [Description("The real data to score samples against, as for 'diffuse eval' (default: the data the model was trained on; for images its test split).")]
    public string? Data { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Samples per setting and real points per metric (default 2000 for tables, 500 for images).")]
    public int? Count { get; init; }

    /// <summary>Feature network.</summary>
    [CommandOption("--features <FILE>")]
    [Description("Images: the feature network of the Fréchet distance, as for 'diffuse eval' (default: the classifier shipped for the model's data set).")]
    public string? Features { get; init; }

    /// <summary>Guidance.</summary>
    [CommandOption("--guidance <W>")]
    [Description("Images, class-conditional models: classifier-free guidance scale s of every setting's samples (default 1.5, as 'diffuse sample'; Ho and Salimans' w = s − 1).")]
    public double? Guidance { get; init; }

    /// <summary>Steps of the reference.</summary>
    [CommandOption("--reference-steps <N>")]
    [Description("Steps of the reference (DDPM) and of the ODE limit (DDIM), trailing timesteps (default: every trained timestep). Fewer make a cheaper, weaker reference: with images every trained timestep is expensive.")]
    public int? ReferenceSteps { get; init; }

    /// <summary>Steps of the ODE limit.</summary>
    [CommandOption("--ode-limit-steps <N>")]
    [Description("Steps of the ODE limit (DDIM, trailing timesteps) when they should differ from the reference's (default: as many). With images, 100 halve the cost of a full-length benchmark.")]
    public int? OdeLimitSteps { get; init; }

    /// <summary>Measure again.</summary>
    [CommandOption("--fresh")]
    [Description("Measure every setting again instead of reusing the measurements kept in the model folder (bench-samplers.runs.json) from an earlier or interrupted run of the same weights, data, count, seed and guidance.")]
    public bool Fresh { get; init; }

    /// <summary>Seed.</summary>
    [CommandOption("--seed <S>")]
    [Description("Seed: every setting draws samples 0 … N−1 of this seed, so all start from the same noise. Default 0.")]
    public ulong Seed { get; init; }

    /// <summary>Samplers.</summary>
    [CommandOption("--samplers <LIST>")]
    [Description("Comma-separated samplers to compare (default all: ddpm, ddim, euler, heun, euler-ancestral, dpm++2m, dpm++3m, dpm++2m-sde, unipc).")]
    public string? Samplers { get; init; }

    /// <summary>Spacings.</summary>
    [CommandOption("--spacings <LIST>")]
    [Description("Comma-separated spacings (default trailing,karras,logsnr; also leading, linspace). ddpm and ddim use only trailing, leading and linspace.")]
    public string? Spacings { get; init; }
}

/// <summary>
/// <c>diffuse bench-samplers</c>: measures every sampler, spacing and budget of network evaluations on a trained model
/// (<see cref="SamplerBenchmark"/>), prints the table, writes bench-samplers.csv, bench-samplers.png and sampler.json
/// (the best setting per budget, which <c>diffuse sample</c> and <c>diffuse eval</c> then use by default) into the
/// model folder. Table models are scored by the KDE score (<see cref="KdeScoreMetric"/>); image models by the Fréchet
/// distance on a feature network (<see cref="FrechetDistanceMetric"/>) against the same test images, with the same
/// class-balanced, guided samples as <c>diffuse eval</c> (<see cref="ImageEvaluationSets"/>), beside its floor.
/// </summary>
public sealed class BenchSamplersCommand : Command<BenchSamplersSettings>
{
    /// <summary>The results table in the model folder.</summary>
    public const string CsvFile = "bench-samplers.csv";

    /// <summary>The plot in the model folder.</summary>
    public const string PngFile = "bench-samplers.png";

    /// <inheritdoc />
    public override int Execute(CommandContext context, BenchSamplersSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new DiffuseException("--model is required: the folder of a trained model.");
        if (settings.Count is < 10) throw new DiffuseException($"--count must be at least 10 (got {settings.Count}).");
        if (settings.ReferenceSteps is < 1) throw new DiffuseException($"--reference-steps must be at least 1 (got {settings.ReferenceSteps}).");
        if (settings.OdeLimitSteps is < 1) throw new DiffuseException($"--ode-limit-steps must be at least 1 (got {settings.OdeLimitSteps}).");
        var budgets = ParseBudgets(settings.Budgets);
        var samplers = settings.Samplers is null ? SamplerBenchmarkOptions.DefaultSamplers.ToArray() : SplitList(settings.Samplers, "--samplers").Select(n => SamplerNames.Parse(n, "--samplers")).ToArray();
        var spacings = settings.Spacings is null ? SamplerBenchmarkOptions.DefaultSpacings.ToArray() : SplitList(settings.Spacings, "--spacings").Select(n => SamplerSpacings.Parse(n)).ToArray();
        new SamplerBenchmarkOptions(budgets, samplers, spacings, settings.Count ?? 10, settings.Seed, ReferenceSteps: settings.ReferenceSteps ?? 0, OdeLimitSteps: settings.OdeLimitSteps ?? 0).Validate();

        string folder = settings.Model;
        using var model = DiffusionModel.Load(folder, settings.TorchDevice());
        settings.ApplyThreads(model.IsImage);
        using var scope = NewDisposeScope();
        var output = CliContext.Out;
        int T = model.Schedule.Timesteps;
        SamplerBenchmarkOptions options;
        ISampleQualityMetric metric;
        ImageEvaluationSets? images = null;
        QualityMeasurement? floor = null;
        var keyParts = new List<string>();
        try
        {
            if (model.IsImage)
            {
                int requested = settings.Count ?? DefaultImageCount;
                double guidance = settings.Guidance ?? SamplingDefaults.Guidance;
                if (model.ClassCount == 0 && settings.Guidance is not null)
                    throw new DiffuseException($"--guidance needs a class-conditional model; {folder} was trained without classes.");
                images = ImageEvaluationSets.Prepare(model, settings.Data, settings.Features, requested, settings.Seed, ImageSources.Log, ImageSources.ReadFolder);
                options = new SamplerBenchmarkOptions(budgets, samplers, spacings, requested, settings.Seed, images.Labels, guidance, settings.ReferenceSteps ?? 0, settings.OdeLimitSteps ?? 0);
                var fd = new FrechetDistanceMetric(images.Network, images.Reference.Images);
                metric = fd;
                floor = fd.Measure(images.Floor.Images);
                keyParts.AddRange(new[] { images.Describe(guidance), images.TestWhat, Path.GetFullPath(images.FeaturesPath), string.Join(",", images.Labels ?? Array.Empty<long>()) });
                output.WriteLine($"model {folder}: {model.Config.Data.Source}, {model.Config.Step} training steps, T = {T}; {images.Describe(guidance)}");
                output.WriteLine($"scoring {requested} images per setting by {fd.Name} ({Path.GetFullPath(images.FeaturesPath)}) against {requested} images of {images.TestWhat}; " +
                                 $"floor: {requested} images of {images.TrainWhat}{(images.Labels is null ? "" : ", the same classes")}, FD {Fd(floor.Value)}");
            }
            else
            {
                foreach (var (given, name) in new[] { (settings.Features is not null, "--features"), (settings.Guidance is not null, "--guidance") })
                    if (given) throw new DiffuseException($"{name} applies to image models; {folder} was trained on a table ({model.Config.Data.Source}).");
                string data = settings.Data ?? DefaultData(model);
                int requested = settings.Count ?? DefaultTableCount;
                var (train, heldOut, description) = EvalCommand.ResolveData(model, data, requested);
                // The same count and seed as 'diffuse eval', so every cell can be reproduced with it.
                int count = (int)Math.Min(requested, Math.Min(train.shape[0], heldOut.shape[0] * 4));
                options = new SamplerBenchmarkOptions(budgets, samplers, spacings, count, settings.Seed, ReferenceSteps: settings.ReferenceSteps ?? 0, OdeLimitSteps: settings.OdeLimitSteps ?? 0);
                metric = new KdeScoreMetric(train, heldOut, (long)settings.Seed);
                keyParts.Add(description);
                output.WriteLine($"model {folder}: {model.Config.Data.Source}, {model.Config.Step} training steps, T = {T}; scoring against {description}");
            }

            int settingsToMeasure = SamplerBenchmark.Settings(model.Schedule, options).Count;
            int referenceSteps = options.ReferenceStepCount(model.Schedule), odeSteps = options.OdeLimitStepCount(model.Schedule);
            string Steps(int n) => n == T ? $"all {T} trained timesteps" : $"{n} of the {T} trained timesteps";
            string reference = referenceSteps == odeSteps
                ? $"DDPM and DDIM with {Steps(referenceSteps)}: the reference and the ODE limit{(model.IsImage && referenceSteps == T ? "; --reference-steps N and --ode-limit-steps N make them cheaper" : "")}"
                : $"DDPM with {Steps(referenceSteps)}, the reference, and DDIM with {Steps(odeSteps)}, the ODE limit";
            output.WriteLine($"measuring {settingsToMeasure} sampler settings (first {reference}), {options.Count} samples each, seed {settings.Seed}, metric: {metric.Name}");

            SamplerBenchmarkResult result;
            // Measurements of the same weights, metric, samples and seed are kept in the model folder after every setting:
            // an interrupted run resumes, a wider one measures only the new settings.
            keyParts.AddRange(new[] { metric.Name, $"count {options.Count}", $"seed {options.Seed}", $"guidance {options.Guidance.ToString("R", CultureInfo.InvariantCulture)}", $"step {model.Config.Step}" });
            var store = SamplerRunStore.Open(folder, SamplerRunStore.KeyOf(folder, keyParts));
            var wanted = SamplerBenchmark.Settings(model.Schedule, options).ToHashSet();
            var known = settings.Fresh ? Array.Empty<SamplerRun>() : store.Runs.Where(r => wanted.Contains(r.Setting)).ToArray();
            if (known.Length > 0)
                output.WriteLine($"reusing {known.Length} of the {settingsToMeasure} settings measured earlier on these weights, samples and seed ({Path.GetFullPath(store.FilePath)}; --fresh measures them again)");
            else if (store.Discarded > 0)
                output.WriteLine($"{store.FilePath} holds measurements of other weights, data, count, seed or guidance: they will be replaced");

            // The bar counts network evaluations of one sample (a guided sample's two passes count once), so that a
            // full-length reference, hours on images, moves with a rate and an ETA instead of sitting at 0 of N settings.
            double totalEvaluations = SamplerBenchmark.TotalEvaluations(model.Schedule, options, known), finished = 0;
            string last = "";
            using (var bar = new ProgressBar("bench", (long)Math.Ceiling(totalEvaluations), "eval"))
            {
                result = SamplerBenchmark.Run(model, metric, options,
                    p =>
                    {
                        if (p.Reused) return;
                        store.Add(p.Run);
                        finished += (double)p.Run.FunctionEvaluations * options.Count;
                        last = $"{p.Run.Setting.Describe(model.Schedule)}: {Value(p.Run.Quality)}";
                        bar.Report((long)Math.Round(finished), $"{p.Done}/{p.Total} settings; last {last}");
                    },
                    cancellationToken,
                    w => bar.Report((long)Math.Round(w.Evaluations),
                        $"setting {w.Index}/{settingsToMeasure}: {w.Setting.Describe(model.Schedule)}{(last.Length == 0 ? "" : $"; last {last}")}"),
                    known);
            }

            output.Write(FormatTable(result, model, floor));
            var record = result.ToRecord(model.Config.Step);
            string csv = Path.Combine(folder, CsvFile), png = Path.Combine(folder, PngFile), json = Path.Combine(folder, SamplerRecord.FileName);
            AtomicFile.WriteAllText(csv, ToCsv(result, floor));
            SavePlot(png, result, model, floor);
            record.Save(folder);
            var chosen = result.Best.First(r => r.Budget == result.DefaultBudget);
            bool matches = metric.Matches(chosen.Quality, result.Reference.Quality);
            output.WriteLine(matches
                ? $"default for 'diffuse sample' and 'eval' without --sampler: budget {result.DefaultBudget}, the smallest whose best setting matches the reference ({MatchRule(metric)})"
                : $"default for 'diffuse sample' and 'eval' without --sampler: budget {result.DefaultBudget}, the largest (no budget's best setting matched the reference: {MatchRule(metric)})");
            output.WriteLine($"  {chosen.Setting.Describe(model.Schedule)}; --nfe N takes the best of the largest budget up to N, --sampler overrides");
            output.WriteLine($"wrote {Path.GetFullPath(csv)}, {Path.GetFullPath(png)} and {Path.GetFullPath(json)}");
            return 0;
        }
        finally
        {
            images?.Dispose();
        }
    }

    /// <summary>Samples per setting for a table model when --count is not given.</summary>
    public const int DefaultTableCount = 2000;

    /// <summary>Images per setting for an image model when --count is not given (every setting draws this many).</summary>
    public const int DefaultImageCount = 500;

    private static string MatchRule(ISampleQualityMetric metric) =>
        metric switch
        {
            KdeScoreMetric => $"a KDE score at most {Num(KdeScoreMetric.Tolerance, 2)} nats below it",
            FrechetDistanceMetric => $"an FD at most {FrechetDistanceMetric.Tolerance * 100:0}% above it",
            _ => "within the metric's tolerance",
        };

    /// <summary>The data the model was trained on, when it can be found again.</summary>
    private static string DefaultData(DiffusionModel model)
    {
        string source = model.Config.Data.Source;
        if (TabularSource.IsToy(source) || File.Exists(source)) return source;
        throw new DiffuseException($"--data is required: the model was trained on '{source}', which is not a built-in distribution or an existing file here. Give the same data (or a CSV file with the same columns).");
    }

    private static int[] ParseBudgets(string? text)
    {
        if (text is null) return SamplerBenchmarkOptions.DefaultBudgets.ToArray();
        var budgets = new List<int>();
        foreach (var part in SplitList(text, "--budgets"))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int b) || b < 1)
                throw new DiffuseException($"--budgets must be a comma-separated list of whole numbers of at least 1, such as 5,10,20 (got '{text}').");
            budgets.Add(b);
        }
        return budgets.ToArray();
    }

    private static string[] SplitList(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new DiffuseException($"{option} is empty: give a comma-separated list.");
        return parts;
    }

    private static string Num(double value, int digits = 4) =>
        double.IsNaN(value) ? "n/a" : value.ToString("F" + digits, CultureInfo.InvariantCulture);

    private static string Seconds(double seconds) =>
        seconds.ToString(seconds < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + " s";

    private static string Fd(double value) => double.IsNaN(value) ? "n/a" : value.ToString("G4", CultureInfo.InvariantCulture);

    /// <summary>A measurement: "value ± s.e.", or the value to four significant digits when the metric has no standard error (FD).</summary>
    private static string Value(QualityMeasurement q) => double.IsNaN(q.StdError) ? Fd(q.Value) : $"{Num(q.Value)} ± {Num(q.StdError)}";

    /// <summary>
    /// The table: one row per sampler and spacing, one column per budget; then the reference, the ODE limit, the floor
    /// (images) and the best per budget. For a lower-is-better metric (FD) every value is also given relative to the
    /// reference's.
    /// </summary>
    /// <param name="result">The benchmark.</param>
    /// <param name="model">The model (for the settings' descriptions).</param>
    /// <param name="floor">The metric of real images (as many as samples) against the reference set, when measured (images).</param>
    internal static string FormatTable(SamplerBenchmarkResult result, DiffusionModel model, QualityMeasurement? floor = null)
    {
        var budgets = result.Options.Budgets.Order().ToArray();
        var rows = result.Runs.GroupBy(r => (r.Setting.Kind, r.Setting.Spacing)).ToList();
        const int cellWidth = 30;
        var reference = result.Reference;
        double referenceValue = reference.Quality.Value;
        bool relative = !result.HigherIsBetter && referenceValue > 0;
        string Relative(double value) => relative && double.IsFinite(value)
            ? (value / referenceValue).ToString(value / referenceValue < 0.1 ? "G2" : "0.00", CultureInfo.InvariantCulture) + "×"
            : "";
        var sb = new StringBuilder();
        sb.AppendLine();
        string measured = result.Runs.Any(r => !double.IsNaN(r.Quality.StdError)) ? " ± s.e." : "";
        string ratio = relative ? " and its ratio to the reference's (×)" : "";
        sb.AppendLine($"{result.MetricName} ({result.MetricUnit}, {(result.HigherIsBetter ? "higher" : "lower")} is better){measured}{ratio}, and seconds for {result.Options.Count} samples; * marks the best of a budget, (n) fewer evaluations than the budget");
        sb.Append($"{"sampler",-16}{"spacing",-10}");
        foreach (int b in budgets) sb.Append($"{b + " NFE",cellWidth}");
        sb.AppendLine();
        foreach (var row in rows)
        {
            sb.Append($"{SamplerNames.Name(row.Key.Kind),-16}{SamplerSpacings.Name(row.Key.Spacing),-10}");
            foreach (int b in budgets)
            {
                var run = row.FirstOrDefault(r => r.Budget == b);
                if (run is null) { sb.Append(new string(' ', cellWidth)); continue; }
                bool best = result.Best.Any(x => x.Budget == b && x.Setting == run.Setting);
                string cost = run.FunctionEvaluations < b ? $"({run.FunctionEvaluations})" : "";
                string times = Relative(run.Quality.Value);
                string cell = $"{(best ? "*" : "")}{cost} {Value(run.Quality)}{(times == "" ? "" : " " + times)} {run.Seconds.ToString("0.00", CultureInfo.InvariantCulture)}s";
                sb.Append("  " + cell.PadLeft(cellWidth - 2));
            }
            sb.AppendLine();
        }
        double Gap(double value) => result.HigherIsBetter ? referenceValue - value : value - referenceValue;
        string Worse(double value) => relative
            ? $"{Relative(value)} the reference's {result.MetricName}"
            : Gap(value) >= 0 ? $"{Num(Gap(value))} worse than the reference" : $"{Num(-Gap(value))} better than the reference";
        sb.AppendLine($"reference: {reference.Setting.Describe(model.Schedule)} ({reference.FunctionEvaluations} NFE): {Value(reference.Quality)}, {Seconds(reference.Seconds)}");
        var ode = result.OdeLimit;
        sb.AppendLine($"ODE limit: {ode.Setting.Describe(model.Schedule)} ({ode.FunctionEvaluations} NFE): {Value(ode.Quality)}, {Seconds(ode.Seconds)} " +
                      $"({Worse(ode.Quality.Value)}: the deterministic samplers converge to it)");
        if (floor is not null)
            sb.AppendLine($"floor: {result.Options.Count} real training images vs the same reference set: {Value(floor)}" +
                          $"{(relative ? $" ({Relative(floor.Value)} the reference's)" : "")}; the {result.MetricName} of a perfect sampler at this count, so differences below about it are noise");
        sb.AppendLine($"best per budget (recorded in {SamplerRecord.FileName}):");
        foreach (var best in result.Best)
        {
            sb.AppendLine($"  {best.Budget,4} NFE: {best.Setting.Describe(model.Schedule),-36} {Value(best.Quality)}  ({Worse(best.Quality.Value)}), {Seconds(best.Seconds)}");
        }
        return sb.ToString();
    }

    /// <summary>
    /// bench-samplers.csv: the reference, the ODE limit, then every cell, with the metric's details; then, when measured
    /// (images), the floor (real images against the reference set) with an empty sampler.
    /// </summary>
    internal static string ToCsv(SamplerBenchmarkResult result, QualityMeasurement? floor = null)
    {
        var c = CultureInfo.InvariantCulture;
        var details = result.Reference.Quality.Details.Select(d => d.Key)
            .Concat(result.Runs.SelectMany(r => r.Quality.Details.Select(d => d.Key))).Distinct().ToArray();
        var sb = new StringBuilder();
        sb.AppendLine("role,sampler,spacing,budget,steps,nfe,score,std_error,seconds,best" + string.Concat(details.Select(d => "," + d)));
        string Value(double v) => double.IsNaN(v) ? "" : v.ToString("R", c);
        string Line(string role, SamplerRun r, bool best)
        {
            var detail = details.Select(d => r.Quality.Details.FirstOrDefault(x => x.Key == d) is { Key: not null } kv ? Value(kv.Value) : "");
            return $"{role},{SamplerNames.Name(r.Setting.Kind)},{SamplerSpacings.Name(r.Setting.Spacing)},{r.Budget},{r.Setting.Steps},{r.FunctionEvaluations}," +
                   $"{Value(r.Quality.Value)},{Value(r.Quality.StdError)},{r.Seconds.ToString("0.000", c)},{(best ? 1 : 0)}" + string.Concat(detail.Select(d => "," + d));
        }
        sb.AppendLine(Line("reference", result.Reference, false));
        sb.AppendLine(Line("ode-limit", result.OdeLimit, false));
        foreach (var run in result.Runs)
            sb.AppendLine(Line("grid", run, result.Best.Any(b => b.Budget == run.Budget && b.Setting == run.Setting)));
        if (floor is not null)
            sb.AppendLine($"floor,,,,,,{Value(floor.Value)},{Value(floor.StdError)},,0" + string.Concat(details.Select(_ => ",")));
        return sb.ToString();
    }

    /// <summary>
    /// bench-samplers.png: one line chart per spacing, stacked, each with a line per sampler (the same colour in every
    /// chart) of the gap to the reference (how much worse than DDPM with every trained timestep) against the evaluations
    /// per sample, on a log scale, with the ODE limit as a flat line. Gaps below a floor (including settings that scored
    /// better than the reference) are drawn at the floor, the largest power of ten not above the smallest positive gap,
    /// and gaps more than four decades above it at that limit.
    /// </summary>
    internal static void SavePlot(string path, SamplerBenchmarkResult result, DiffusionModel model, QualityMeasurement? floorMeasurement = null)
    {
        double reference = result.Reference.Quality.Value;
        // A positive distance (the FD of images) is drawn itself, beside the reference, the ODE limit and the floor: few-step
        // solvers often beat ancestral DDPM there, and a chart of gaps to the reference would be empty.
        bool absolute = !result.HigherIsBetter && reference > 0;
        double Gap(double value) => result.HigherIsBetter ? reference - value : value - reference;
        var positive = result.Runs.Select(r => Gap(r.Quality.Value)).Append(Gap(result.OdeLimit.Quality.Value))
            .Where(g => double.IsFinite(g) && g > 0).DefaultIfEmpty(1).ToList();
        double floor = Math.Pow(10, Math.Floor(Math.Log10(positive.Min()))), top = floor * 1e4;
        bool clipped = result.Runs.Any(r => Gap(r.Quality.Value) > top);
        double Plotted(double value) => double.IsNaN(value) ? double.NaN : absolute ? value : Math.Clamp(Gap(value), floor, top);
        var kinds = Enum.GetValues<SamplerKind>();
        var spacings = result.Runs.Select(r => r.Setting.Spacing).Distinct().ToList();
        var xs = result.Runs.Select(r => (double)r.FunctionEvaluations).ToList();
        var charts = new List<SKBitmap>();
        try
        {
            foreach (var spacing in spacings)
            {
                var series = new List<LineSeries>();
                foreach (var kind in kinds)
                {
                    var runs = result.Runs.Where(r => r.Setting.Kind == kind && r.Setting.Spacing == spacing)
                        .GroupBy(r => r.FunctionEvaluations).Select(g => g.First()).OrderBy(r => r.FunctionEvaluations).ToList();
                    // An empty series keeps each sampler's colour the same in every chart; without a name it has no legend entry.
                    series.Add(new LineSeries(runs.Count == 0 ? "" : SamplerNames.Name(kind),
                        runs.Select(r => (double)r.FunctionEvaluations).ToArray(), runs.Select(r => Plotted(r.Quality.Value)).ToArray()));
                }
                double ode = Plotted(result.OdeLimit.Quality.Value);
                series.Add(new LineSeries($"ODE limit: ddim, {result.OdeLimit.Setting.Steps} steps", new[] { xs.Min(), xs.Max() }, new[] { ode, ode }));
                if (absolute)
                {
                    series.Add(new LineSeries($"reference: ddpm, {result.Reference.Setting.Steps} steps", new[] { xs.Min(), xs.Max() }, new[] { reference, reference }));
                    if (floorMeasurement is { Value: > 0 } f)
                        series.Add(new LineSeries("floor: real images", new[] { xs.Min(), xs.Max() }, new[] { f.Value, f.Value }));
                    charts.Add(Figures.RenderLineChart($"{SamplerSpacings.Name(spacing)}: {result.MetricName} (lower is better)", series,
                        "NFE per sample", $"{result.MetricUnit}", logY: true));
                    continue;
                }
                string title = $"{SamplerSpacings.Name(spacing)}: {result.MetricName} gap to {result.Reference.Setting.Steps}-step DDPM (lower is better)";
                string low = floor.ToString("G3", CultureInfo.InvariantCulture), high = top.ToString("G3", CultureInfo.InvariantCulture);
                string xLabel = clipped ? $"NFE per sample; gaps outside {low} to {high} drawn at the limit" : $"NFE per sample; gaps below {low} drawn at it";
                charts.Add(Figures.RenderLineChart(title, series, xLabel, $"gap ({result.MetricUnit})", logY: true));
            }
            using var figure = new SKBitmap(Figures.LineChartWidth, Figures.LineChartHeight * charts.Count);
            using (var canvas = new SKCanvas(figure))
            {
                canvas.Clear(SKColors.White);
                for (int i = 0; i < charts.Count; i++) canvas.DrawBitmap(charts[i], 0, i * Figures.LineChartHeight);
            }
            AtomicFile.WriteAllBytes(path, Figures.EncodePng(figure));
        }
        finally
        {
            foreach (var chart in charts) chart.Dispose();
        }
    }
}

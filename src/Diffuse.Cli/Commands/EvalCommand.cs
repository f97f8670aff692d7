using Diffuse.Checkpoints;
using System.ComponentModel;
using Diffuse.Data;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Sampling;
using Diffuse.Training;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>Settings of <c>diffuse eval</c>.</summary>
public sealed class EvalSettings : SamplerSettings
{
    /// <summary>Model folder.</summary>
    [CommandOption("--model <DIR>")]
    [Description("A model folder written by 'diffuse train', or the name of a model shipped with Diffuse (fashion-mnist).")]
    public string? Model { get; init; }

    /// <summary>Data.</summary>
    [CommandOption("--data <DATA>")]
    [Description("Tables: the built-in distribution or CSV file the model was trained on (its held-out rows are used), or another CSV file with the same columns. Images (optional): data with a test split (default: the model's own data, e.g. fashion-mnist), or a folder or IDX file of held-out images.")]
    public string? Data { get; init; }

    /// <summary>NLL.</summary>
    [CommandOption("--nll")]
    [Description("Also compute the negative log-likelihood of the held-out data by the method of --method: nats/dim in the data's units for tables, bits/dim of the test split for images.")]
    public bool Nll { get; init; }

    /// <summary>Count.</summary>
    [CommandOption("--count <N>")]
    [Description("Generated samples and real points per metric (default 2000 for tables, 1000 for images; a class-conditional model draws class i % K for sample i).")]
    public int? Count { get; init; }

    /// <summary>Feature network.</summary>
    [CommandOption("--features <FILE>")]
    [Description("Images: the feature network of the metrics, a safetensors file: a Diffuse feature classifier or pytorch-fid's Inception-v3 (then FID and KID). Default: the classifier shipped for the model's data set (models/classifiers/<data>.safetensors).")]
    public string? Features { get; init; }

    /// <summary>Guidance.</summary>
    [CommandOption("--guidance <W>")]
    [Description("Images, class-conditional models: classifier-free guidance scale s of the samples (default 1.5, as 'diffuse sample'; 1 plain conditional; Ho and Salimans' w = s − 1).")]
    public double? Guidance { get; init; }

    /// <summary>JSON report.</summary>
    [CommandOption("--json <FILE>")]
    [Description("Images: also write the image-quality report as JSON.")]
    public string? Json { get; init; }

    /// <summary>Memorisation check.</summary>
    [CommandOption("--memorization <FILE>")]
    [Description("Images: also find each sample's nearest training image (pixel L2), compare with held-out real images, and write a .png of the closest samples beside their nearest training images.")]
    public string? Memorization { get; init; }

    /// <summary>Images in the likelihood.</summary>
    [CommandOption("--nll-count <N>")]
    [Description("Images: test images in --nll (default 200, a seeded class-balanced subset): the bound costs T network evaluations per image.")]
    public int? NllCount { get; init; }

    /// <summary>Timesteps per batch in the bound.</summary>
    [CommandOption("--nll-timesteps <K>")]
    [Description("Images, --method vlb: evaluate K of the T diffusion terms per batch of 10 images (one per stratum of T/K timesteps, weighted), an unbiased estimate of the bound at K/T of the cost; default every term.")]
    public int? NllTimesteps { get; init; }

    /// <summary>Bound variance.</summary>
    [CommandOption("--nll-variance <NAME>")]
    [Description("Reverse variance in the bound (--method vlb): large (β, default: the tight choice for continuous data) or small (β̃).")]
    public string? NllVariance { get; init; }

    /// <summary>Decoder variance of the bound at t = 1.</summary>
    [CommandOption("--nll-decoder-variance <NAME>")]
    [Description("Fixed variance of the bound's decoder p(x | z_1) (--method vlb): clipped (β̃ of the second step, as Ho et al.'s and improved-diffusion's code: the convention of published bits/dim; default) or beta1 (β_1, Diffuse 0.1.0's).")]
    public string? NllDecoderVariance { get; init; }

    /// <summary>The decoder variance named by --nll-decoder-variance.</summary>
    public DecoderVariance BoundDecoderVariance() => (NllDecoderVariance ?? "clipped").Trim().ToLowerInvariant() switch
    {
        "clipped" => DecoderVariance.ClippedPosterior,
        "beta1" => DecoderVariance.FirstBeta,
        _ => throw new DiffuseException($"--nll-decoder-variance must be one of clipped, beta1 (got '{NllDecoderVariance}')."),
    };

    /// <summary>Likelihood method.</summary>
    [CommandOption("--method <NAME>")]
    [Description("How --nll computes the likelihood: vlb (the variational bound, an upper bound; default) or ode (the exact likelihood through the probability-flow ODE).")]
    public string? Method { get; init; }

    /// <summary>ODE steps.</summary>
    [CommandOption("--ode-steps <N>")]
    [Description("RK4 steps in log σ of --method ode (default 100; 4 network evaluations each).")]
    public int? OdeSteps { get; init; }

    /// <summary>Adaptive solver.</summary>
    [CommandOption("--adaptive")]
    [Description("--method ode: the adaptive Dormand–Prince 5(4) solver with --rtol and --atol instead of fixed steps.")]
    public bool Adaptive { get; init; }

    /// <summary>Relative tolerance.</summary>
    [CommandOption("--rtol <R>")]
    [Description("Relative tolerance of --adaptive (default 1e-5).")]
    public double? Rtol { get; init; }

    /// <summary>Absolute tolerance.</summary>
    [CommandOption("--atol <A>")]
    [Description("Absolute tolerance of --adaptive (default 1e-5).")]
    public double? Atol { get; init; }

    /// <summary>Hutchinson probes.</summary>
    [CommandOption("--hutchinson <K>")]
    [Description("--method ode: Hutchinson probes per divergence evaluation (default 1; each costs a backward pass).")]
    public int? Hutchinson { get; init; }

    /// <summary>Probe distribution.</summary>
    [CommandOption("--probe <NAME>")]
    [Description("Distribution of the Hutchinson probes: rademacher (default, lower variance) or gaussian.")]
    public string? Probe { get; init; }

    /// <summary>Exact trace.</summary>
    [CommandOption("--exact-trace")]
    [Description("--method ode: the exact divergence, one backward pass per column, instead of Hutchinson's estimate (no trace noise).")]
    public bool ExactTrace { get; init; }

    /// <summary>Start of the flow.</summary>
    [CommandOption("--sigma-min <S>")]
    [Description("--method ode: the noise level where the flow starts at the data (default: the first trained timestep's σ, for 8-bit images at most 1e-3).")]
    public double? SigmaMin { get; init; }

    /// <summary>The likelihood method: true for the ODE, after checking that the options fit it.</summary>
    public bool UsesOde()
    {
        bool ode = (Method?.Trim().ToLowerInvariant()) switch
        {
            null or "vlb" => false,
            "ode" => true,
            _ => throw new DiffuseException($"--method must be vlb or ode (got '{Method}')."),
        };
        if (Method is not null && !Nll) throw new DiffuseException("--method chooses how --nll computes the likelihood: give --nll too.");
        bool odeOptions = OdeSteps is not null || Adaptive || Rtol is not null || Atol is not null || Hutchinson is not null
                          || Probe is not null || ExactTrace || SigmaMin is not null;
        if (odeOptions && !ode) throw new DiffuseException("--ode-steps, --adaptive, --rtol, --atol, --hutchinson, --probe, --exact-trace and --sigma-min apply to --method ode.");
        if (ode && NllVariance is not null) throw new DiffuseException("--nll-variance applies to the variational bound (--method vlb), not to --method ode.");
        if (ode && NllDecoderVariance is not null) throw new DiffuseException("--nll-decoder-variance applies to the variational bound (--method vlb), not to --method ode.");
        if ((Rtol is not null || Atol is not null) && !Adaptive) throw new DiffuseException("--rtol and --atol apply to --adaptive.");
        if (Adaptive && OdeSteps is not null) throw new DiffuseException("--ode-steps sets the fixed-step solver; --adaptive chooses its own steps: give one of them.");
        if (ExactTrace && (Hutchinson is not null || Probe is not null)) throw new DiffuseException("--exact-trace needs no Hutchinson probes: drop --hutchinson and --probe.");
        return ode;
    }

    /// <summary>The ODE likelihood options these settings describe.</summary>
    public OdeLikelihoodOptions ToOdeOptions()
    {
        var defaults = new OdeLikelihoodOptions();
        var options = new OdeLikelihoodOptions(
            OdeSteps ?? defaults.Steps,
            Hutchinson ?? defaults.HutchinsonSamples,
            Adaptive,
            Rtol ?? defaults.Rtol,
            Atol ?? defaults.Atol,
            ExactTrace: ExactTrace,
            Probe: Probe is null ? defaults.Probe : Parse.Enum<HutchinsonProbe>("--probe", Probe),
            SigmaMin: SigmaMin);
        options.Validate();
        return options;
    }
}

/// <summary><c>diffuse eval</c>.</summary>
public sealed class EvalCommand : Command<EvalSettings>
{
    /// <inheritdoc />
    public override int Execute(CommandContext context, EvalSettings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Model)) throw new DiffuseException("--model is required: the folder of a trained model, or a shipped model's name (fashion-mnist).");
        if (settings.Count is < 10) throw new DiffuseException($"--count must be at least 10 (got {settings.Count}).");
        CliContext.RequireSingleProcess("eval");

        var boundVariance = Parse.Enum<DdpmVariance>("--nll-variance", settings.NllVariance ?? "large");
        settings.BoundDecoderVariance();
        bool ode = settings.UsesOde();
        var odeOptions = ode ? settings.ToOdeOptions() : null;
        string folder = ModelFolders.Resolve(settings.Model);
        using var model = DiffusionModel.Load(folder, settings.TorchDevice());
        settings.ApplyThreads(model.IsImage);
        model.ClampToDataRange = !settings.NoClamp;
        if (model.IsImage) return ImageEvaluation.Run(model, folder, settings, boundVariance, odeOptions, cancellationToken);
        foreach (var (given, name) in new[] { (settings.Features is not null, "--features"), (settings.Guidance is not null, "--guidance"),
                     (settings.Json is not null, "--json"), (settings.Memorization is not null, "--memorization"), (settings.NllCount is not null, "--nll-count"), (settings.NllTimesteps is not null, "--nll-timesteps") })
            if (given) throw new DiffuseException($"{name} applies to image models; {settings.Model} was trained on a table ({model.Config.Data.Source}).");
        if (string.IsNullOrWhiteSpace(settings.Data)) throw new DiffuseException("--data is required: the data to compare the model with.");
        var (options, samplerDescription) = settings.ResolveSampler(model, folder);
        using var scope = NewDisposeScope();
        int requested = settings.Count ?? 2000;
        var (train, heldOut, description) = ResolveData(model, settings.Data, requested);
        int count = (int)Math.Min(requested, Math.Min(train.shape[0], heldOut.shape[0] * 4));
        CliContext.Out.WriteLine($"model {settings.Model}: {model.Config.Data.Source}, {model.Config.Step} steps; comparing with {description}");
        CliContext.Out.WriteLine($"sampler: {samplerDescription}; {count} samples");
        var generated = SampleCommand.Generate(model, count, settings.Seed, options, cancellationToken);
        var report = SampleMetrics.Evaluate(generated, train, heldOut, seed: (long)settings.Seed);
        CliContext.Out.WriteLine(report.Format());
        if (settings.Nll)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            if (odeOptions is not null)
            {
                CliContext.Out.WriteLine($"nll method: ode (probability-flow ODE, exact likelihood): {odeOptions.Describe()}");
                var likelihood = ComputeOdeNll(model, heldOut, odeOptions, settings.Seed, cancellationToken);
                CliContext.Out.WriteLine(FormatOdeNll(likelihood, (int)heldOut.shape[0], clock.Elapsed.TotalSeconds));
            }
            else
            {
                CliContext.Out.WriteLine($"nll method: vlb (variational bound, an upper bound): reverse variance {boundVariance.ToString().ToLowerInvariant()}, decoder σ² = {ImageEvaluation.DecoderVarianceName(settings.BoundDecoderVariance())} at t = 1, all {model.Schedule.Timesteps} timesteps");
                var bound = ComputeBound(model, heldOut, boundVariance, settings.BoundDecoderVariance(), cancellationToken);
                CliContext.Out.WriteLine(FormatBound(bound, (int)heldOut.shape[0]) + $"; {Parse.F(clock.Elapsed.TotalSeconds, 1)} s");
            }
        }
        return 0;
    }

    /// <summary>The ODE likelihood with a progress bar.</summary>
    public static LikelihoodResult ComputeOdeNll(DiffusionModel model, Tensor data, OdeLikelihoodOptions options, ulong seed, CancellationToken cancellationToken) =>
        WithProgress(options.Adaptive ? "‰" : "step", cancellationToken, progress => model.OdeNll(data, options, seed, progress));

    /// <summary>
    /// Runs <paramref name="compute"/> with a progress bar labelled "nll" (rate and ETA), created at the first report
    /// since only the computation knows its total.
    /// </summary>
    public static T WithProgress<T>(string unit, CancellationToken cancellationToken, Func<Action<int, int>, T> compute)
    {
        ProgressBar? bar = null;
        try
        {
            return compute((done, total) =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                bar ??= new ProgressBar("nll", total, unit);
                bar.Report(done);
            });
        }
        finally
        {
            bar?.Dispose();
        }
    }

    /// <summary>One line describing the ODE likelihood.</summary>
    public static string FormatOdeNll(LikelihoodResult result, int rows, double seconds) =>
        $"ODE negative log-likelihood of held-out data ({rows} rows): {Parse.F(result.NatsPerDim)} ± {Parse.F(result.StdError)} nats/dim " +
        $"({Parse.F(result.BitsPerDim)} bits/dim); parts per dim: prior {Parse.F(result.PriorNatsPerDim)}, flow {Parse.F(result.FlowNatsPerDim)}, units {Parse.F(result.UnitsNatsPerDim)}; " +
        $"{result.Method}; {result.FunctionEvaluations} network evaluations per point; {Parse.F(seconds, 1)} s";

    /// <summary>The bound with a progress bar.</summary>
    public static BoundResult ComputeBound(DiffusionModel model, Tensor data, DdpmVariance variance, DecoderVariance decoderVariance,
        CancellationToken cancellationToken) =>
        WithProgress("t", cancellationToken, progress => model.Bound(data, decoderVariance, 0, variance, progress));

    /// <summary>One line describing the bound.</summary>
    public static string FormatBound(BoundResult bound, int rows) =>
        $"variational bound on held-out NLL ({rows} rows): {Parse.F(bound.NatsPerDim)} ± {Parse.F(bound.StdError)} nats/dim " +
        $"({Parse.F(bound.BitsPerDim)} bits/dim); parts per dim: prior {Parse.F(bound.PriorNatsPerDim, 5)}, diffusion {Parse.F(bound.DiffusionNatsPerDim)}, decoder {Parse.F(bound.DecoderNatsPerDim)}";

    /// <summary>
    /// Real data to compare with: for a built-in distribution, the model's training draw and a fresh held-out draw; for
    /// the CSV file the model was trained on, its training and held-out rows; for another CSV file, two halves of it.
    /// </summary>
    public static (Tensor Train, Tensor HeldOut, string Description) ResolveData(DiffusionModel model, string data, int count)
    {
        var config = model.Config.Data;
        if (TabularSource.IsToy(data))
        {
            using var loaded = TabularSource.Load(data, config.Count);
            if (!string.Equals(loaded.Source, config.Source, StringComparison.OrdinalIgnoreCase))
                throw new DiffuseException($"the model was trained on '{config.Source}', not '{loaded.Source}'. Give --data {config.Source}.");
            return (loaded.Rows.alias(), TabularSource.ToyHeldOut(data, count), $"{count} fresh points of {loaded.Source}");
        }
        using var table = TabularSource.Load(data, 0);
        model.CheckColumns(table.Rows);
        if (config.Holdout > 0)
        {
            var (train, held) = TabularSource.Split(table.Rows, config.Holdout);
            if (DataFingerprint.Of(train) == config.Fingerprint)
                return (train, held, $"the {held.shape[0]} held-out rows of {data}");
            train.Dispose();
            held.Dispose();
        }
        else if (DataFingerprint.Of(table.Rows) == config.Fingerprint)
        {
            throw new DiffuseException($"the model was trained on every row of {data} (--holdout 0), so no held-out rows are left to measure it on. Give a CSV file of other rows with the same columns.");
        }
        var (first, second) = TabularSource.Split(table.Rows, 0.5);
        return (first, second, $"{data} (not the training file: one half is the real reference, the other the held-out set)");
    }
}

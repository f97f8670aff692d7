using Diffuse.Checkpoints;
using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Evaluation;
using Diffuse.Evaluation.Features;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.IO;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse.Cli.Commands;

/// <summary>
/// <c>diffuse eval</c> on an image model: image quality of generated samples beside the noise floor of real images
/// (<see cref="ImageQualityReport"/>), optionally the test split's negative log-likelihood in bits/dim and a
/// memorisation check.
/// </summary>
/// <remarks>
/// The sets, all of one size N = --count and the same class mix: N generated images (class i % K for sample i of a
/// class-conditional model); the reference, N images of the test split; the floor, N images of the training split,
/// which the reference does not contain. The subsets are seeded by --seed and class-balanced like the samples.
/// </remarks>
public static class ImageEvaluation
{
    /// <summary>Generated images per metric when --count is not given.</summary>
    public const int DefaultCount = 1000;

    /// <summary>Test images in the likelihood when --nll-count is not given (the bound costs T network evaluations per image).</summary>
    public const int DefaultNllCount = 200;

    /// <summary>Samples shown in the memorisation picture.</summary>
    public const int MemorizationPairs = 16;

    // The stream of the likelihood's test images, a seeded draw of its own.
    private const ulong NllStream = StreamDomains.ImageLikelihood;

    /// <summary>Runs the evaluation and prints it; returns the exit code.</summary>
    public static int Run(DiffusionModel model, string folder, EvalSettings settings, DdpmVariance boundVariance,
        OdeLikelihoodOptions? odeOptions, CancellationToken cancellationToken)
    {
        int classes = model.ClassCount;
        if (classes == 0 && settings.Guidance is not null)
            throw new DiffuseException($"--guidance needs a class-conditional model; {settings.Model} was trained without classes.");
        if (settings.NllCount is not null && !settings.Nll) throw new DiffuseException("--nll-count sets the test images of --nll: give --nll too.");
        if (settings.NllTimesteps is not null && !settings.Nll) throw new DiffuseException("--nll-timesteps sets the terms of --nll: give --nll too.");
        if (settings.NllTimesteps is < 1) throw new DiffuseException($"--nll-timesteps must be at least 1 (got {settings.NllTimesteps}).");
        if (settings.NllCount is < 2) throw new DiffuseException($"--nll-count must be at least 2 (got {settings.NllCount}).");
        if (settings.Memorization is { } picture && !picture.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new DiffuseException($"--memorization writes a picture: give a .png file (got '{picture}').");
        int count = settings.Count ?? DefaultCount;
        double guidance = settings.Guidance ?? SamplingDefaults.Guidance;
        using var sets = ImageEvaluationSets.Prepare(model, settings.Data, settings.Features, count, settings.Seed, ImageSources.Log, ImageSources.ReadFolder);
        var (train, test, reference, floor, labels, network) = (sets.Train, sets.Test, sets.Reference, sets.Floor, sets.Labels, sets.Network);
        var (options, samplerDescription) = settings.ResolveSampler(model, folder, imageDefault: true);
        bool accuracy = labels is not null && network.ClassCount == classes;
        CliContext.Out.WriteLine($"model {settings.Model}: {model.Config.Data.Source}, {model.Config.Step} steps; {sets.Describe(guidance)}");
        CliContext.Out.WriteLine($"reference: {count} images of {sets.TestWhat}; floor: {count} images of {sets.TrainWhat}{(labels is null ? "" : ", the same classes")}");
        CliContext.Out.WriteLine($"features: {network.Name} ({Path.GetFullPath(sets.FeaturesPath)})");
        if (labels is not null && !accuracy)
            CliContext.Out.WriteLine($"note: {network.Name} knows {network.ClassCount} classes, the model {classes}: no class accuracy.");
        CliContext.Out.WriteLine($"sampler: {samplerDescription}; {count} samples");

        using var scope = NewDisposeScope();
        var generated = SampleCommand.Generate(model, count, settings.Seed, options, cancellationToken, labels: labels, guidance: guidance);
        // The metrics measure the 8-bit images a user would save, not the unquantised floats.
        var pixels = ImageDataset.ToBytes(generated);
        ImageQualityReport report;
        using (var progress = new ProgressFeatureNetwork(network, 3L * count, cancellationToken))
            report = ImageQualityReport.Evaluate(progress, pixels, accuracy ? labels : null, reference.Images, floor.Images,
                accuracy ? floor.Labels : null, new ImageQualityOptions(Seed: unchecked((long)settings.Seed)));
        CliContext.Out.Write(report.ToTable());
        if (settings.Json is { } json)
        {
            AtomicFile.WriteAllText(json, report.ToJson());
            CliContext.Out.WriteLine($"wrote the report to {Path.GetFullPath(json)}");
        }
        if (settings.Memorization is { } memorization) CheckMemorization(pixels, train, reference, memorization, cancellationToken);
        if (settings.Nll) Likelihood(model, test, settings, sets.TestWhat, boundVariance, odeOptions, cancellationToken);
        return 0;
    }

    private static void CheckMemorization(Tensor samples, ImageDataset train, ImageDataset heldOut, string path, CancellationToken cancellationToken)
    {
        MemorizationReport check;
        using (var bar = new ProgressBar("nearest", 2L * train.Count, "img"))
            check = Diffuse.Evaluation.SampleQuality.Memorization.Check(samples, train.Images, heldOut.Images, onProgress: (done, _) =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                bar.Report(done);
            });
        CliContext.Out.Write(check.Format());
        using var scope = NewDisposeScope();
        var closest = check.Closest(MemorizationPairs);
        var pairs = new List<Tensor>();
        foreach (int i in closest)
        {
            pairs.Add(samples[i]);
            pairs.Add(train.Images[check.NearestTraining[i]]);
        }
        var images = ImageDataset.ToModelRange(stack(pairs));
        var rowLabels = closest.Select(i => $"d {Parse.F(check.SampleDistances[i], 2)}").ToArray();
        Pictures.ImageGrid(path, images, 2, rowLabels);
        CliContext.Out.WriteLine($"wrote the {closest.Length} samples closest to a training image (left) beside that image (right) to {Path.GetFullPath(path)}");
    }

    private static void Likelihood(DiffusionModel model, ImageDataset test, EvalSettings settings, string testWhat,
        DdpmVariance boundVariance, OdeLikelihoodOptions? odeOptions, CancellationToken cancellationToken)
    {
        int requested = settings.NllCount ?? Math.Min(DefaultNllCount, test.Count);
        // A class-balanced subset when the test images are labelled; else a uniform one.
        int classes = test.ClassNames.Length;
        long[]? balance = test.Labels is not null ? Enumerable.Range(0, requested).Select(i => (long)(i % classes)).ToArray() : null;
        using var images = ImageEvaluationSets.Choose(test, balance, requested, settings.Seed, NllStream, testWhat, "--nll-count");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string parts;
        string line;
        if (odeOptions is not null)
        {
            var options = odeOptions with { Dequantize = true };
            CliContext.Out.WriteLine($"nll method: ode (probability-flow ODE with uniform dequantisation, a bound on the 8-bit likelihood): {options.Describe()}");
            var result = EvalCommand.WithProgress(options.Adaptive ? "‰" : "step", cancellationToken,
                progress => model.OdeNll(images, options, settings.Seed, progress));
            line = $"test-split NLL (ODE): {Parse.F(result.BitsPerDim, 3)} ± {Parse.F(result.BitsStdError, 3)} bits/dim ({images.Count} images, {result.FunctionEvaluations} network evaluations each)";
            parts = $"per dim: prior {Bits(result.PriorNatsPerDim)}, flow {Bits(result.FlowNatsPerDim)}, dequantisation and units {Bits(result.UnitsNatsPerDim)} bits; {result.Method}";
        }
        else
        {
            int T = model.Schedule.Timesteps;
            string variance = boundVariance == DdpmVariance.Large ? "σ² = β" : "σ² = β̃";
            int k = settings.NllTimesteps is { } K && K < T - 1 ? K : 0;
            // Sampled terms: small batches, so that many independent timestep draws enter the standard error.
            int batch = k > 0 ? 10 : 250;
            int terms = k > 0 ? k + 1 : T;
            string how = k > 0 ? $"{k} of the {T - 1} diffusion terms per batch of {batch} images (stratified, unbiased) plus the decoder and prior" : $"{T} terms per image";
            CliContext.Out.WriteLine($"nll method: vlb (variational bound with the discretised decoder, Ho et al. 2020 §3.3; decoder σ² = {DecoderVarianceName(settings.BoundDecoderVariance())} at t = 1): {how}, {images.Count} test images ({(long)terms * images.Count} network evaluations)");
            var bound = EvalCommand.WithProgress("t", cancellationToken, progress => model.Bound(images, settings.BoundDecoderVariance(), settings.Seed, boundVariance, progress, batch, k));
            string termsNote = k > 0 ? $"{k} sampled terms of T = {T} per batch" : $"T = {T} terms each";
            line = $"test-split NLL bound: {Parse.F(bound.BitsPerDim, 3)} ± {Parse.F(bound.BitsStdError, 3)} bits/dim ({images.Count} images, {termsNote}, {variance})";
            parts = $"per dim: prior {Bits(bound.PriorNatsPerDim, 5)}, diffusion {Bits(bound.DiffusionNatsPerDim)}, decoder {Bits(bound.DecoderNatsPerDim)} bits";
        }
        CliContext.Out.WriteLine(line);
        CliContext.Out.WriteLine($"  {parts}; {Parse.F(clock.Elapsed.TotalSeconds, 1)} s");
    }

    /// <summary>The decoder's variance at t = 1 as the bound's description line names it.</summary>
    public static string DecoderVarianceName(DecoderVariance variance) => variance == DecoderVariance.FirstBeta ? "β_1" : "β̃_2";

    private static string Bits(double natsPerDim, int digits = 3) => Parse.F(natsPerDim / Math.Log(2), digits);
}

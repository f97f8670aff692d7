using Diffuse.Checkpoints;
using Diffuse.Data;
using Diffuse.Data.Images;
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

    // Streams of SeededNoise.Permutation for the three real subsets, so that each is its own seeded draw.
    internal const ulong ReferenceStream = StreamDomains.ImageReference;
    internal const ulong FloorStream = StreamDomains.ImageFloor;
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
        using var sets = ImageEvaluationSets.Prepare(model, settings.Data, settings.Features, count, settings.Seed);
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

    /// <summary>
    /// The training images of the model and the test images to compare with: with --data (or, without it, the model's
    /// own data) that has a test split, its two splits; with --data that is one set of images (a folder or an IDX file),
    /// those images as the test set and the model's own training data reloaded. The training images must be the ones
    /// the model was trained on (same fingerprint): the floor and the memorisation check are about them. Also returns
    /// the model's own data (which names the default feature network) and how to call the two sets in messages.
    /// </summary>
    public static (ImageDataset Train, ImageDataset Test, string Own, string TrainWhat, string TestWhat) LoadData(DiffusionModel model, string? data)
    {
        var config = model.Config.Data;
        string own = ImageSources.FromTrainingSource(config.Source);
        if (data is not null && (TabularSource.IsToy(data) || data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)))
            throw new DiffuseException($"--data {data} is a table, but the model was trained on images ({config.Source}): give image data, or leave --data out to use the model's own ({own}).");
        string name = data ?? own;
        int size = (int)model.ExampleShape[1];
        bool grey = model.ExampleShape[0] == 1;
        ImageDataset Load(string source, DatasetSplit split) => ImageSources.Load(source, split, size, grey);
        if (ImageSources.HasTestSplit(name))
        {
            var train = Load(name, DatasetSplit.Train);
            try
            {
                CheckTrainingImages(model, train, name);
                var test = Load(name, DatasetSplit.Test);
                model.CheckImages(test);
                return (train, test, own, $"the training split of {name}", $"the test split of {name}");
            }
            catch
            {
                train.Dispose();
                throw;
            }
        }
        if (data is null)
            throw new DiffuseException($"the model's data {config.Source} has no test split to evaluate on: give --data held-out images of the same size (a folder of images or an IDX file the model was not trained on).");
        var heldOut = Load(data, DatasetSplit.Test);
        try
        {
            model.CheckImages(heldOut);
            if (DataFingerprint.Of(heldOut) == config.Fingerprint)
                throw new DiffuseException($"--data {data} holds the images the model was trained on and has no test split: give --data held-out images the model did not see.");
            var train = Load(own, DatasetSplit.Train);
            try
            {
                CheckTrainingImages(model, train, own);
                return (train, heldOut, own, $"the training images of {own}", data);
            }
            catch
            {
                train.Dispose();
                throw;
            }
        }
        catch
        {
            heldOut.Dispose();
            throw;
        }
    }

    private static void CheckTrainingImages(DiffusionModel model, ImageDataset train, string name)
    {
        model.CheckImages(train);
        var config = model.Config.Data;
        if (DataFingerprint.Of(train) != config.Fingerprint)
            throw new DiffuseException($"the training images of {name} ({train.Count}) are not the {config.Count} images the model was trained on ({config.Source}): give --data the data it was trained on, or a folder or IDX file of held-out images.");
    }

    /// <summary>The classifier shipped for <paramref name="data"/> (models/classifiers/&lt;name&gt;.safetensors next to the program).</summary>
    internal static string DefaultFeatures(string data)
    {
        string? path = ImageSources.IsNamedDataset(data) ? Path.Combine(ModelFolders.ShippedRoot, "classifiers", data.ToLowerInvariant() + ".safetensors") : null;
        if (path is not null && File.Exists(path)) return path;
        throw new DiffuseException(
            $"no feature network is known for {data}: give --features a safetensors file (a Diffuse feature classifier trained on this data, or pytorch-fid's Inception-v3 for FID; see docs/metrics.md). " +
            "Classifiers ship for fashion-mnist, mnist and emoji; 'dotnet run --project bench/Diffuse.Bench -c Release -- train-classifier <fashion-mnist|mnist|emoji|emoji-google> <out.safetensors>' trains one.");
    }

    /// <summary>
    /// <paramref name="count"/> images of <paramref name="set"/>, a seeded subset: with <paramref name="labels"/>, image i has
    /// class labels[i] (the same class mix as the samples); without, a uniform random subset.
    /// </summary>
    public static ImageDataset Choose(ImageDataset set, long[]? labels, int count, ulong seed, ulong stream, string what, string option)
    {
        var order = SeededNoise.Permutation(seed, stream, set.Count);
        if (labels is null)
        {
            if (count > set.Count) throw new DiffuseException($"{option} {count} is more than the {set.Count} images of {what}: give {option} {set.Count} or less.");
            return set.Subset(order.Take(count).Select(i => (long)i).ToArray());
        }
        int classes = set.ClassNames.Length;
        var byClass = Enumerable.Range(0, classes).Select(_ => new Queue<long>()).ToArray();
        foreach (int i in order) byClass[set.Labels![i]].Enqueue(i);
        var needed = new int[classes];
        foreach (long label in labels) needed[label]++;
        for (int k = 0; k < classes; k++)
            if (needed[k] > byClass[k].Count)
            {
                // Sample i has class i % K, so class k needs ⌈(N − k)/K⌉ images: N ≤ available_k·K + k for every k.
                int most = Enumerable.Range(0, classes).Min(c => byClass[c].Count * classes + c);
                throw new DiffuseException($"{option} {count} needs {needed[k]} images of class {k} ({set.ClassNames[k]}) but {what} has {byClass[k].Count}: give {option} {most} or less.");
            }
        return set.Subset(labels.Select(label => byClass[label].Dequeue()).ToArray());
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
        using var images = Choose(test, balance, requested, settings.Seed, NllStream, testWhat, "--nll-count");
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

/// <summary>
/// What an image evaluation compares, shared by <c>diffuse eval</c> and <c>diffuse bench-samplers</c>: the training and
/// test images (<see cref="ImageEvaluation.LoadData"/>), the class of each generated image (i % K for a
/// class-conditional model), the reference (N test images) and the floor (N training images of the same classes), both
/// seeded subsets (<see cref="ImageEvaluation.Choose"/>), and the feature network (--features, or the classifier
/// shipped for the model's data). Disposing it disposes all of them.
/// </summary>
public sealed class ImageEvaluationSets : IDisposable
{
    private ImageEvaluationSets(ImageDataset train, ImageDataset test, string trainWhat, string testWhat, int classes)
    {
        Train = train;
        Test = test;
        TrainWhat = trainWhat;
        TestWhat = testWhat;
        ClassCount = classes;
    }

    /// <summary>The model's training images.</summary>
    public ImageDataset Train { get; }

    /// <summary>The held-out images (the test split).</summary>
    public ImageDataset Test { get; }

    /// <summary>How to call <see cref="Train"/> in messages.</summary>
    public string TrainWhat { get; }

    /// <summary>How to call <see cref="Test"/> in messages.</summary>
    public string TestWhat { get; }

    /// <summary>The model's class count (0 for an unconditional model).</summary>
    public int ClassCount { get; }

    /// <summary>The class of each generated image (i % K), or null for an unconditional model.</summary>
    public long[]? Labels { get; private set; }

    /// <summary>The file of <see cref="Network"/>.</summary>
    public string FeaturesPath { get; private set; } = "";

    /// <summary>The feature network of the metrics.</summary>
    public IImageFeatureNetwork Network { get; private set; } = null!;

    /// <summary>N test images with the generated images' class mix: what every metric measures against.</summary>
    public ImageDataset Reference { get; private set; } = null!;

    /// <summary>N training images with the same class mix, disjoint from the reference: the metrics' noise floor.</summary>
    public ImageDataset Floor { get; private set; } = null!;

    /// <summary>
    /// Loads the sets for <paramref name="count"/> generated images of <paramref name="model"/>: <paramref name="data"/>
    /// as for eval's --data (null for the model's own data), <paramref name="features"/> as for --features (null for
    /// the shipped classifier), subsets seeded by <paramref name="seed"/>. Throws a <see cref="DiffuseException"/> when
    /// the features file is missing, the data does not fit the model, or there are too few images for
    /// <paramref name="count"/>.
    /// </summary>
    public static ImageEvaluationSets Prepare(DiffusionModel model, string? data, string? features, int count, ulong seed)
    {
        if (features is not null && !File.Exists(features))
            throw new DiffuseException($"--features file '{features}' does not exist: check the path, or leave --features out to use the classifier shipped for the data set.");
        int classes = model.ClassCount;
        var (train, test, own, trainWhat, testWhat) = ImageEvaluation.LoadData(model, data);
        var sets = new ImageEvaluationSets(train, test, trainWhat, testWhat, classes);
        try
        {
            if (classes > 0)
                foreach (var (set, split) in new[] { (train, "training"), (test, "test") })
                    if (set.Labels is null || set.ClassNames.Length != classes)
                        throw new DiffuseException($"the model is conditioned on {classes} classes but the {split} images ({(split == "test" ? testWhat : trainWhat)}) have {(set.Labels is null ? "no labels" : $"{set.ClassNames.Length} classes")}: give --data the labelled data the model was trained on.");
            sets.Labels = classes > 0 ? Enumerable.Range(0, count).Select(i => (long)(i % classes)).ToArray() : null;
            sets.FeaturesPath = features ?? ImageEvaluation.DefaultFeatures(own);
            sets.Network = FeatureNetworks.Load(sets.FeaturesPath);
            sets.Reference = ImageEvaluation.Choose(test, sets.Labels, count, seed, ImageEvaluation.ReferenceStream, testWhat, "--count");
            sets.Floor = ImageEvaluation.Choose(train, sets.Labels, count, seed, ImageEvaluation.FloorStream, trainWhat, "--count");
            return sets;
        }
        catch
        {
            sets.Dispose();
            throw;
        }
    }

    /// <summary>What the generated images are: "unconditional", or the classes in turn with the guidance scale.</summary>
    public string Describe(double guidance) => Labels is null
        ? "unconditional"
        : $"{ClassCount} classes in turn (sample i has class i % {ClassCount}), guidance {guidance.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)}";

    /// <inheritdoc />
    public void Dispose()
    {
        Floor?.Dispose();
        Reference?.Dispose();
        Network?.Dispose();
        Test.Dispose();
        Train.Dispose();
    }
}

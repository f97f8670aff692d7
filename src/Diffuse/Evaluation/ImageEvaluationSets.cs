using Diffuse.Data;
using Diffuse.Data.Images;
using Diffuse.Evaluation.Features;
using Diffuse.Randomness;
using Diffuse.Training;

namespace Diffuse.Evaluation;

/// <summary>
/// What an image evaluation compares, shared by <c>diffuse eval</c> and <c>diffuse bench-samplers</c>: the training and
/// test images (<see cref="LoadData"/>), the class of each generated image (i % K for a
/// class-conditional model), the reference (N test images) and the floor (N training images of the same classes), both
/// seeded subsets (<see cref="Choose"/>), and the feature network (a features file, or the classifier shipped for the
/// model's data, <see cref="DefaultFeatures"/>). Disposing it disposes all of them.
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
    /// the name of image data (<see cref="ImageSources"/>; null for the model's own data), <paramref name="features"/> a
    /// features file (null for the shipped classifier), subsets seeded by <paramref name="seed"/>. Throws a <see cref="DiffuseException"/> when
    /// the features file is missing, the data does not fit the model, or there are too few images for
    /// <paramref name="count"/>.
    /// </summary>
    public static ImageEvaluationSets Prepare(DiffusionModel model, string? data, string? features, int count, ulong seed,
        Action<string>? log = null, ImageFolderLoader? readFolder = null)
    {
        if (features is not null && !File.Exists(features))
            throw new DiffuseException($"{Param.Of("ImageEvaluationSets.Prepare(features)", "features")} file '{features}' does not exist: check the path, or leave {Param.Of("ImageEvaluationSets.Prepare(features)", "features")} out to use the classifier shipped for the data set.");
        int classes = model.ClassCount;
        var (train, test, own, trainWhat, testWhat) = LoadData(model, data, log, readFolder);
        var sets = new ImageEvaluationSets(train, test, trainWhat, testWhat, classes);
        try
        {
            if (classes > 0)
                foreach (var (set, split) in new[] { (train, "training"), (test, "test") })
                    if (set.Labels is null || set.ClassNames.Length != classes)
                        throw new DiffuseException($"the model is conditioned on {classes} classes but the {split} images ({(split == "test" ? testWhat : trainWhat)}) have {(set.Labels is null ? "no labels" : $"{set.ClassNames.Length} classes")}: give {Param.Of("ImageEvaluationSets.Prepare(data)", "data")} the labelled data the model was trained on.");
            sets.Labels = classes > 0 ? Enumerable.Range(0, count).Select(i => (long)(i % classes)).ToArray() : null;
            sets.FeaturesPath = features ?? DefaultFeatures(own);
            sets.Network = FeatureNetworks.Load(sets.FeaturesPath);
            sets.Reference = Choose(test, sets.Labels, count, seed, StreamDomains.ImageReference, testWhat, Param.Of("ImageEvaluationSets.Prepare(count)", "count"));
            sets.Floor = Choose(train, sets.Labels, count, seed, StreamDomains.ImageFloor, trainWhat, Param.Of("ImageEvaluationSets.Prepare(count)", "count"));
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

    /// <summary>
    /// The training images of the model and the test images to compare with: with --data (or, without it, the model's
    /// own data) that has a test split, its two splits; with --data that is one set of images (a folder or an IDX file),
    /// those images as the test set and the model's own training data reloaded. The training images must be the ones
    /// the model was trained on (same fingerprint): the floor and the memorisation check are about them. Also returns
    /// the model's own data (which names the default feature network) and how to call the two sets in messages.
    /// </summary>
    public static (ImageDataset Train, ImageDataset Test, string Own, string TrainWhat, string TestWhat) LoadData(DiffusionModel model, string? data,
        Action<string>? log = null, ImageFolderLoader? readFolder = null)
    {
        var config = model.Config.Data;
        string own = ImageSources.FromTrainingSource(config.Source);
        if (data is not null && (TabularSource.IsToy(data) || data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)))
            throw new DiffuseException($"{Param.Of("ImageEvaluationSets.Prepare(data)", "data")} {data} is a table, but the model was trained on images ({config.Source}): give image data, or leave {Param.Of("ImageEvaluationSets.Prepare(data)", "data")} out to use the model's own ({own}).");
        string name = data ?? own;
        int size = (int)model.ExampleShape[1];
        bool grey = model.ExampleShape[0] == 1;
        ImageDataset Load(string source, DatasetSplit split) => ImageSources.Load(source, split, size, grey, log: log, readFolder: readFolder);
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
            throw new DiffuseException($"the model's data {config.Source} has no test split to evaluate on: give {Param.Of("ImageEvaluationSets.Prepare(data)", "data")} held-out images of the same size (a folder of images or an IDX file the model was not trained on).");
        var heldOut = Load(data, DatasetSplit.Test);
        try
        {
            model.CheckImages(heldOut);
            if (DataFingerprint.Of(heldOut) == config.Fingerprint)
                throw new DiffuseException($"{Param.Of("ImageEvaluationSets.Prepare(data)", "data")} {data} holds the images the model was trained on and has no test split: give {Param.Of("ImageEvaluationSets.Prepare(data)", "data")} held-out images the model did not see.");
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
            throw new DiffuseException($"the training images of {name} ({train.Count}) are not the {config.Count} images the model was trained on ({config.Source}): give {Param.Of("ImageEvaluationSets.Prepare(data)", "data")} the data it was trained on, or a folder or IDX file of held-out images.");
    }

    /// <summary>The classifier shipped for <paramref name="data"/> (models/classifiers/&lt;name&gt;.safetensors next to the program).</summary>
    public static string DefaultFeatures(string data)
    {
        string? path = ImageSources.IsNamedDataset(data) ? Path.Combine(ShippedModels.Root, "classifiers", data.ToLowerInvariant() + ".safetensors") : null;
        if (path is not null && File.Exists(path)) return path;
        throw new DiffuseException(
            $"no feature network is known for {data}: give {Param.Of("ImageEvaluationSets.Prepare(features)", "features")} a safetensors file (a Diffuse feature classifier trained on this data, or pytorch-fid's Inception-v3 for FID; see docs/metrics.md). " +
            "Classifiers ship for fashion-mnist, mnist and emoji; the benchmark project's 'train-classifier <fashion-mnist|mnist|emoji|emoji-google> <out.safetensors>' (bench/Diffuse.Bench) trains one.");
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

using Diffuse.Checkpoints;
using Diffuse.Randomness;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffuse.Evaluation.Features;

/// <summary>Shape of the feature classifier; stored in its safetensors metadata.</summary>
/// <param name="Channels">Image channels.</param>
/// <param name="Height">Image height.</param>
/// <param name="Width">Image width.</param>
/// <param name="Classes">Number of classes.</param>
/// <param name="Features">Width of the feature layer used by the metrics.</param>
public sealed record FeatureClassifierConfig(int Channels, int Height, int Width, int Classes, int Features = 128);

/// <summary>
/// A small convolutional classifier whose penultimate activations serve as the feature space of the image metrics
/// (Fréchet distance, KID, precision/recall) and whose predictions measure class accuracy of conditional samples. It
/// plays the role Inception-v3 plays for FID, trained on the data set itself because no Inception weights can be
/// downloaded here; metrics computed with it are named for it ("FD (Diffuse Fashion-MNIST features)"), not "FID".
/// Inputs are images in [−1, 1], [B, C, H, W]; as an <see cref="IImageFeatureNetwork"/> it also takes uint8 pixels,
/// repeats a grey channel for a colour network and resizes other sizes bilinearly to its own.
/// </summary>
public sealed class FeatureClassifier : Module<Tensor, Tensor>, IImageFeatureNetwork
{
    /// <summary>The safetensors metadata value of <c>kind</c> that marks a saved classifier.</summary>
    public const string Kind = "diffuse-feature-classifier/1";

    /// <summary>The safetensors metadata key of the data set name the classifier was trained on.</summary>
    public const string DatasetKey = "dataset";

    [ComponentName(Name = "conv1")] private readonly Conv2d conv1;
    [ComponentName(Name = "conv2")] private readonly Conv2d conv2;
    [ComponentName(Name = "conv3")] private readonly Conv2d conv3;
    [ComponentName(Name = "conv4")] private readonly Conv2d conv4;
    [ComponentName(Name = "features")] private readonly Linear features;
    [ComponentName(Name = "dropout")] private readonly Dropout dropout;
    [ComponentName(Name = "head")] private readonly Linear head;

    /// <summary>Builds the network with the current torch random state.</summary>
    public FeatureClassifier(FeatureClassifierConfig config) : base("feature_classifier")
    {
        Config = config;
        conv1 = Conv2d(config.Channels, 32, 3, padding: 1);
        conv2 = Conv2d(32, 32, 3, padding: 1);
        conv3 = Conv2d(32, 64, 3, padding: 1);
        conv4 = Conv2d(64, 64, 3, padding: 1);
        features = Linear(64 * 4, config.Features);
        dropout = Dropout(0.3);
        head = Linear(config.Features, config.Classes);
        RegisterComponents();
    }

    /// <summary>The configuration.</summary>
    public FeatureClassifierConfig Config { get; }

    /// <summary>
    /// The data set the classifier was trained on (e.g. "fashion-mnist"), from the <c>dataset</c> metadata of a saved
    /// classifier; null when unknown. <see cref="Save"/> stores it.
    /// </summary>
    public string? Dataset { get; set; }

    /// <summary>"Diffuse Fashion-MNIST features" (the data set's display name), or "Diffuse classifier features" when <see cref="Dataset"/> is unknown.</summary>
    public string Name => Dataset is null ? "Diffuse classifier features" : $"Diffuse {DisplayName(Dataset)} features";

    /// <summary>False: metrics on these features are not FID or KID.</summary>
    public bool IsFidInception => false;

    /// <inheritdoc />
    public int InputChannels => Config.Channels;

    /// <inheritdoc />
    public int InputHeight => Config.Height;

    /// <inheritdoc />
    public int InputWidth => Config.Width;

    /// <inheritdoc />
    public int FeatureCount => Config.Features;

    /// <inheritdoc />
    public int ClassCount => Config.Classes;

    /// <summary>Images per batch in <see cref="Features"/> and <see cref="Embed"/>.</summary>
    public int BatchSize { get; set; } = 512;

    /// <summary>Class logits [B, classes] of images in [−1, 1] (training mode keeps dropout active).</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        return head.call(dropout.call(FeatureLayer(images))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The feature vectors [N, Features] (post-ReLU penultimate layer) of images in [−1, 1] or uint8, in batches of
    /// <see cref="BatchSize"/>, in evaluation mode without gradients.
    /// </summary>
    public Tensor Features(Tensor images)
    {
        var (features, logits) = Embed(images);
        logits.Dispose();
        return features;
    }

    /// <summary>The data set names shown in metric names; others are shown as they are.</summary>
    static string DisplayName(string dataset) => dataset.ToLowerInvariant() switch
    {
        "fashion-mnist" => "Fashion-MNIST",
        "mnist" => "MNIST",
        "cifar10" or "cifar-10" => "CIFAR-10",
        "emoji" => "Twemoji",
        "emoji-google" => "Noto Emoji",
        _ => dataset,
    };

    private Tensor FeatureLayer(Tensor images)
    {
        using var scope = NewDisposeScope();
        var h = functional.relu(conv2.call(functional.relu(conv1.call(images))));
        h = functional.max_pool2d(h, 2);
        h = functional.relu(conv4.call(functional.relu(conv3.call(h))));
        h = functional.adaptive_avg_pool2d(h, new long[] { 2, 2 }).flatten(1);
        return functional.relu(features.call(h)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Features [N, Features] and logits [N, Classes] of images in [−1, 1] or uint8, in batches of
    /// <see cref="BatchSize"/>, in evaluation mode without gradients (see <see cref="IImageFeatureNetwork"/> for the
    /// input adaptation).
    /// </summary>
    public (Tensor Features, Tensor Logits) Embed(Tensor images)
    {
        eval();
        var (features, logits) = ImageFeatureBatches.Embed(this, images, BatchSize, batch =>
        {
            var f = FeatureLayer(batch);
            return (f, head.call(f));
        });
        return (features, logits!);
    }

    (Tensor Features, Tensor? Logits) IImageFeatureNetwork.Embed(Tensor images) => Embed(images);

    /// <summary>
    /// Trains with AdamW and cross-entropy on images already in [−1, 1] (uint8 inputs are converted per batch by
    /// <paramref name="toModelRange"/>), with seeded data order; returns the loss of the last epoch.
    /// </summary>
    public double Train(Tensor images, Tensor labels, Func<Tensor, Tensor> toModelRange, int epochs, int batchSize, double learningRate, ulong seed,
        Action<int, int, double>? onProgress = null)
    {
        train();
        var optimizer = new Diffuse.Optimization.AdamW(parameters());
        int n = (int)images.shape[0];
        int stepsPerEpoch = n / batchSize;
        int total = epochs * stepsPerEpoch;
        double lastEpochLoss = 0;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var order = SeededNoise.Permutation(seed, StreamDomains.ClassifierFirstEpoch + (ulong)epoch, n);
            double sum = 0;
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                using var scope = NewDisposeScope();
                var index = tensor(order.Skip(s * batchSize).Take(batchSize).Select(i => (long)i).ToArray());
                var x = toModelRange(images.index_select(0, index));
                var y = labels.index_select(0, index);
                var loss = functional.cross_entropy(call(x), y);
                optimizer.ZeroGrad();
                loss.backward();
                int step = epoch * stepsPerEpoch + s;
                double lr = learningRate * 0.5 * (1 + Math.Cos(Math.PI * step / total));
                optimizer.Step(lr, 1e-4);
                double value = loss.item<float>();
                sum += value;
                onProgress?.Invoke(step + 1, total, value);
            }
            lastEpochLoss = sum / Math.Max(1, stepsPerEpoch);
        }
        optimizer.Dispose();
        eval();
        return lastEpochLoss;
    }

    /// <summary>
    /// Saves the weights with the configuration and <see cref="Dataset"/> in the safetensors metadata; entries of
    /// <paramref name="extra"/> are added (and win over those).
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extra = null)
    {
        var metadata = new Dictionary<string, string>
        {
            ["kind"] = Kind,
            ["channels"] = Config.Channels.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["height"] = Config.Height.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["width"] = Config.Width.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["classes"] = Config.Classes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["features"] = Config.Features.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (Dataset is not null) metadata[DatasetKey] = Dataset;
        if (extra is not null) foreach (var (k, v) in extra) metadata[k] = v;
        Safetensors.Save(path, state_dict(), metadata);
    }

    /// <summary>Loads a classifier saved by <see cref="Save"/>.</summary>
    public static FeatureClassifier Load(string path)
    {
        var header = Safetensors.ReadHeader(path);
        int Get(string key) => header.Metadata.TryGetValue(key, out var v) && int.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out int i)
            ? i : throw new DiffuseException($"{path} is not a Diffuse feature classifier (its metadata lacks '{key}').");
        if (!header.Metadata.TryGetValue("kind", out var kind) || kind != Kind)
            throw new DiffuseException($"{path} is not a Diffuse feature classifier.");
        var classifier = new FeatureClassifier(new FeatureClassifierConfig(Get("channels"), Get("height"), Get("width"), Get("classes"), Get("features")))
        {
            Dataset = header.Metadata.TryGetValue(DatasetKey, out var dataset) && dataset.Length > 0 ? dataset : null,
        };
        using var scope = NewDisposeScope();
        StateDicts.LoadInto(classifier, Safetensors.Load(path), path);
        classifier.eval();
        return classifier;
    }
}

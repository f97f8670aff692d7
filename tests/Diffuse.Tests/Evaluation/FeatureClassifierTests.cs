using Diffuse.Evaluation;
using Diffuse.Tests.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Evaluation;

public class FeatureClassifierTests
{
    [Fact]
    public void LearnsASimpleTaskAndRoundTripsThroughSafetensors()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        manual_seed(0);
        // Class 0: a bright horizontal bar; class 1: a bright vertical bar; random positions, noisy background.
        const int n = 512;
        var images = zeros(n, 1, 12, 12, dtype: ScalarType.Byte);
        var labels = new long[n];
        var rng = new Random(1);
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            int p = rng.Next(1, 11);
            if (labels[i] == 0) images[i, 0, p].fill_(255); else images[i, 0, TensorIndex.Colon, p].fill_(255);
        }
        var labelTensor = tensor(labels);
        var classifier = new FeatureClassifier(new FeatureClassifierConfig(1, 12, 12, 2, Features: 16));
        Tensor ToRange(Tensor b) => b.to_type(ScalarType.Float32) / 127.5f - 1;
        classifier.Train(images, labelTensor, ToRange, epochs: 4, batchSize: 64, learningRate: 3e-3, seed: 0);
        var (features, logits) = classifier.Embed(ToRange(images));
        Assert.Equal(new long[] { n, 16 }, features.shape);
        Assert.True(FeatureMetrics.Accuracy(logits, labelTensor) > 0.95);

        string path = Path.Combine(dir.Path, "classifier.safetensors");
        classifier.Save(path);
        var loaded = FeatureClassifier.Load(path);
        var (featuresAgain, _) = loaded.Embed(ToRange(images));
        Assert.True(features.allclose(featuresAgain));
        Assert.Throws<DiffuseException>(() => FeatureClassifier.Load(Path.Combine(dir.Path, "missing.safetensors")));
    }
}
